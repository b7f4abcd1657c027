"""Static checks of infra/terraform with python-hcl2: what `terraform validate` would catch across
modules, without provider plugins (which cannot be downloaded here). checkov runs in `make check-infra`."""

import re
from pathlib import Path

import hcl2
import pytest

INFRA = Path(__file__).resolve().parents[1] / "infra" / "terraform"
MODULE_DIRS = sorted([*(INFRA / "modules").iterdir(), INFRA / "examples" / "complete"])
META_ARGS = {"source", "depends_on", "count", "for_each", "providers", "version"}


def _unquote(s: str) -> str:
    return s[1:-1] if isinstance(s, str) and len(s) >= 2 and s[0] == s[-1] == '"' else s


def _blocks(parsed: dict, kind: str) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for entry in parsed.get(kind, []):
        for name, body in entry.items():
            out[_unquote(name)] = body
    return out


def _typed_blocks(parsed: dict, kind: str) -> set[tuple[str, str]]:
    out = set()
    for entry in parsed.get(kind, []):
        for rtype, named in entry.items():
            for name in named:
                out.add((_unquote(rtype), _unquote(name)))
    return out


def _module(path: Path) -> dict:
    files = sorted(path.glob("*.tf"))
    parsed = [hcl2.loads(f.read_text()) for f in files]
    text = "\n".join(re.sub(r"#.*", "", f.read_text()) for f in files)
    merged: dict = {}
    for p in parsed:
        for k, v in p.items():
            merged.setdefault(k, []).extend(v)
    return {
        "text": text,
        "variables": _blocks(merged, "variable"),
        "outputs": _blocks(merged, "output"),
        "modules": _blocks(merged, "module"),
        "resources": _typed_blocks(merged, "resource"),
        "data": _typed_blocks(merged, "data"),
        "locals": {k for entry in merged.get("locals", []) for k in entry if k != "__is_block__"},
    }


MODULES = {p: _module(p) for p in MODULE_DIRS}


@pytest.mark.parametrize("path", MODULE_DIRS, ids=lambda p: p.name)
def test_variables_and_outputs_are_declared_and_documented(path):
    m = MODULES[path]
    assert (path / "README.md").is_file(), "every module has a README"
    for name, body in m["variables"].items():
        assert _unquote(body.get("description", "")).strip(), f"variable {name} has no description"
        assert "type" in body, f"variable {name} has no type"
        assert not re.search(r"password|secret_key|access_key|token", name), f"secret as variable: {name}"
    for name, body in m["outputs"].items():
        assert _unquote(body.get("description", "")).strip(), f"output {name} has no description"
    used = set(re.findall(r"\bvar\.([a-z0-9_]+)", m["text"]))
    assert used <= set(m["variables"]), f"undeclared variables: {used - set(m['variables'])}"
    used_locals = set(re.findall(r"\blocal\.([a-z0-9_]+)", m["text"]))
    assert used_locals <= m["locals"], f"undeclared locals: {used_locals - m['locals']}"


@pytest.mark.parametrize("path", MODULE_DIRS, ids=lambda p: p.name)
def test_resource_and_data_references_resolve(path):
    m = MODULES[path]
    text = m["text"]
    data_refs = set(re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", text))
    assert data_refs <= m["data"], f"undeclared data sources: {data_refs - m['data']}"
    without_data = re.sub(r"\bdata\.[a-z0-9_]+\.[a-z0-9_]+", "", text)
    refs = set(re.findall(r"\b((?:aws|kubernetes|helm|tls)_[a-z0-9_]+)\.([a-z0-9_]+)\b", without_data))
    assert refs <= m["resources"], f"undeclared resources: {refs - m['resources']}"


@pytest.mark.parametrize("path", MODULE_DIRS, ids=lambda p: p.name)
def test_module_calls_match_the_called_modules(path):
    m = MODULES[path]
    for call, body in m["modules"].items():
        target = (path / _unquote(body["source"])).resolve()
        assert target in MODULES, f"module {call}: source {target} is not a module here"
        callee = MODULES[target]
        passed = {k for k in body if k not in META_ARGS and k != "__is_block__"}
        assert passed <= set(callee["variables"]), f"module {call}: unknown inputs {passed - set(callee['variables'])}"
        required = {n for n, v in callee["variables"].items() if "default" not in v}
        assert required <= passed, f"module {call}: missing required inputs {required - passed}"
    for call, output in set(re.findall(r"\bmodule\.([a-z0-9_]+)\.([a-z0-9_]+)", m["text"])):
        assert call in m["modules"], f"reference to undeclared module {call}"
        target = (path / _unquote(m["modules"][call]["source"])).resolve()
        assert output in MODULES[target]["outputs"], f"module.{call}.{output} is not an output"


def test_every_checkov_skip_is_justified():
    skips = []
    for tf in INFRA.rglob("*.tf"):
        for line in tf.read_text().splitlines():
            if "checkov:skip=" in line:
                skips.append((tf.name, line.strip()))
                check, _, reason = line.split("checkov:skip=", 1)[1].partition(":")
                assert re.fullmatch(r"CKV2?_[A-Z0-9]+_\d+", check), line
                assert len(reason.strip()) >= 30, f"{tf}: skip without a real justification: {line}"
    assert skips, "the skips are expected to be inline and visible"


def test_the_source_bucket_is_never_writable():
    policy = (INFRA / "modules" / "iam" / "main.tf").read_text()
    source_statements = re.findall(r'statement \{[^{}]*?sid\s*=\s*"(?:ListSource|ReadSource)".*?\n  \}', policy, re.S)
    assert len(source_statements) == 2
    for st in source_statements:
        actions = re.findall(r'"(s3:[A-Za-z*]+)"', re.search(r"actions\s*=\s*\[([^\]]*)\]", st).group(1))
        assert actions and all(a.startswith(("s3:Get", "s3:List")) for a in actions), actions
    # and no other statement touches the source
    assert policy.count("var.source_bucket_arn") == 2 and policy.count("local.source_objects") == 1

"""Curator accounts: argon2id password hashes only, a password policy, and roles (curator, admin)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chromata.review.schema import ROLES, ReviewUser

USERNAME_MAX = 64
PASSWORD_MIN = 12


def check_account(username: str, password: str, role: str) -> None:
    """The account policy; a ValueError that says what is wrong."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if (
        not (1 <= len(username) <= USERNAME_MAX)
        or not username.replace("-", "").replace(".", "").replace("_", "").isalnum()
    ):
        raise ValueError("username: 1-64 letters, digits, '.', '-' or '_'")
    if len(password) < PASSWORD_MIN:
        raise ValueError(f"password: at least {PASSWORD_MIN} characters")


class Accounts:
    engine: Engine

    def add_user(self, username: str, password: str, role: str = "curator") -> None:
        from argon2 import PasswordHasher

        check_account(username, password, role)
        user = ReviewUser(
            username=username,
            password_hash=PasswordHasher().hash(password),
            role=role,
            active=True,
            created_at=time.time(),
        )
        with Session(self.engine) as s, s.begin():
            if s.get(ReviewUser, username) is not None:
                raise ValueError(f"user {username!r} exists")
            s.add(user)

    def authenticate(self, username: str, password: str) -> tuple[str, str] | None:
        """(username, role) when the password matches an active account, else None."""
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError

        hasher = PasswordHasher()
        with Session(self.engine) as s:
            user = s.get(ReviewUser, username)
            if user is None or not user.active:
                hasher.hash(password)  # same work either way: no user enumeration by timing
                return None
            try:
                hasher.verify(user.password_hash, password)
            except (VerificationError, InvalidHashError):
                return None
            return user.username, user.role

    def user_role(self, username: str) -> str | None:
        with Session(self.engine) as s:
            user = s.get(ReviewUser, username)
            return user.role if user and user.active else None

    def users(self) -> list[dict[str, Any]]:
        with Session(self.engine) as s:
            return [
                {"username": u.username, "role": u.role, "active": u.active, "created_at": u.created_at}
                for u in s.scalars(select(ReviewUser).order_by(ReviewUser.username))
            ]

# Least-privilege roles.
# * workers (Ray pods and the Prefect flow runner, through IRSA service accounts): read the source
#   prefix, read/write the derivatives bucket, use its KMS key. Nothing else; no delete on the source.
# * review app (ECS task role): read derivatives (images shown to curators), connect to its database
#   as its own user with IAM authentication.

locals {
  source_objects = "${var.source_bucket_arn}/${var.source_prefix}*"
  oidc_host      = replace(var.oidc_provider_url, "https://", "")
}

data "aws_iam_policy_document" "worker_trust" {
  statement {
    actions = ["sts:AssumeRoleWithWebIdentity"]
    principals {
      type        = "Federated"
      identifiers = [var.oidc_provider_arn]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:sub"
      values   = [for sa in var.worker_service_accounts : "system:serviceaccount:${var.namespace}:${sa}"]
    }
    condition {
      test     = "StringEquals"
      variable = "${local.oidc_host}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ListSource"
    actions   = ["s3:ListBucket", "s3:ListBucketVersions"]
    resources = [var.source_bucket_arn]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.source_prefix}*"]
    }
  }
  statement {
    sid       = "ReadSource"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = [local.source_objects]
  }
  statement {
    sid       = "ListDerivatives"
    actions   = ["s3:ListBucket"]
    resources = [var.derivatives_bucket_arn]
  }
  statement {
    sid = "WriteDerivatives"
    actions = [
      "s3:GetObject",
      "s3:PutObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${var.derivatives_bucket_arn}/*"]
  }
  statement {
    sid       = "UseDerivativesKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [var.kms_key_arn]
  }
  dynamic "statement" {
    for_each = var.source_kms_key_arn == null ? [] : [var.source_kms_key_arn]
    content {
      sid       = "DecryptSource"
      actions   = ["kms:Decrypt"]
      resources = [statement.value]
    }
  }
}

resource "aws_iam_role" "worker" {
  name                 = "chromata-${var.name}-worker"
  assume_role_policy   = data.aws_iam_policy_document.worker_trust.json
  max_session_duration = 43200
  tags                 = var.tags
}

resource "aws_iam_role_policy" "worker" {
  name   = "chromata-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

data "aws_iam_policy_document" "review_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "review" {
  statement {
    sid       = "ReadDerivatives"
    actions   = ["s3:GetObject"]
    resources = ["${var.derivatives_bucket_arn}/*"]
  }
  statement {
    sid       = "DecryptDerivatives"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
  statement {
    sid       = "ConnectToReviewDatabase"
    actions   = ["rds-db:connect"]
    resources = ["arn:aws:rds-db:${var.region}:${var.account_id}:dbuser:${var.db_resource_id}/${var.review_db_user}"]
  }
}

resource "aws_iam_role" "review_app" {
  name               = "chromata-${var.name}-review-app"
  assume_role_policy = data.aws_iam_policy_document.review_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "review_app" {
  name   = "chromata-review-app"
  role   = aws_iam_role.review_app.id
  policy = data.aws_iam_policy_document.review.json
}

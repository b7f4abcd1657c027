# Buckets for one chromata deployment: the institution's existing source bucket is only *read*
# (chromata never writes under it; the IAM module grants read-only), and a derivatives bucket is
# created here: versioned, SSE-KMS with a customer-managed key, public access blocked, lifecycle
# rules for old versions and failed multipart uploads, TLS-only access, and server access logs.

data "aws_caller_identity" "current" {}

data "aws_s3_bucket" "source" {
  bucket = var.source_bucket
}

resource "aws_kms_key" "derivatives" {
  description             = "chromata ${var.name}: derivatives, manifests and review data"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = var.tags
}

data "aws_iam_policy_document" "kms" {
  #checkov:skip=CKV_AWS_111:a KMS key policy's "*" resource means this key only; use is granted by IAM policies scoped to its ARN
  #checkov:skip=CKV_AWS_356:a KMS key policy's "*" resource means this key only (AWS key-policy semantics)
  #checkov:skip=CKV_AWS_109:the account root administers its own key; this is the AWS default key policy, without it the key is unmanageable
  # Key administration stays with the account; use is granted by IAM policies (the IAM module).
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_kms_alias" "derivatives" {
  name          = "alias/chromata-${var.name}"
  target_key_id = aws_kms_key.derivatives.key_id
}

resource "aws_s3_bucket" "logs" {
  #checkov:skip=CKV_AWS_18:this is the access-log bucket itself; logging it to itself would loop
  #checkov:skip=CKV_AWS_144:access logs are not replicated across regions; they are audit aids, not collection data
  #checkov:skip=CKV2_AWS_62:no consumer needs event notifications for access logs
  #checkov:skip=CKV_AWS_145:S3 server access logging only supports SSE-S3 on the target bucket
  bucket        = "${var.derivatives_bucket}-logs"
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket" "derivatives" {
  #checkov:skip=CKV_AWS_144:cross-region replication is an institutional choice (cost, data residency); set it up with replication_role_arn outside this module if required
  #checkov:skip=CKV2_AWS_62:chromata lists the bucket itself; no event consumer is part of this deployment
  bucket        = var.derivatives_bucket
  force_destroy = false
  tags          = var.tags
}

resource "aws_s3_bucket_versioning" "derivatives" {
  bucket = aws_s3_bucket.derivatives.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_versioning" "logs" {
  bucket = aws_s3_bucket.logs.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "derivatives" {
  bucket = aws_s3_bucket.derivatives.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.derivatives.arn
    }
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_public_access_block" "derivatives" {
  bucket                  = aws_s3_bucket.derivatives.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_public_access_block" "logs" {
  bucket                  = aws_s3_bucket.logs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_logging" "derivatives" {
  bucket        = aws_s3_bucket.derivatives.id
  target_bucket = aws_s3_bucket.logs.id
  target_prefix = "s3-access/"
}

resource "aws_s3_bucket_lifecycle_configuration" "derivatives" {
  bucket = aws_s3_bucket.derivatives.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.noncurrent_version_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "logs" {
  bucket = aws_s3_bucket.logs.id
  rule {
    id     = "expire-logs"
    status = "Enabled"
    filter {}
    expiration {
      days = var.log_retention_days
    }
    noncurrent_version_expiration {
      noncurrent_days = 30
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
}

data "aws_iam_policy_document" "tls_only" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.derivatives.arn,
      "${aws_s3_bucket.derivatives.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "derivatives" {
  bucket = aws_s3_bucket.derivatives.id
  policy = data.aws_iam_policy_document.tls_only.json
}

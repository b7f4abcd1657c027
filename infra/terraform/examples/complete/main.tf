# A complete chromata deployment on AWS: buckets, roles, EKS + KubeRay, PostgreSQL, the review app,
# Prefect and monitoring. Networking (VPC, subnets, NAT or VPC endpoints) is the institution's and is
# passed in. See infra/terraform/README.md and docs/operations.md.

data "aws_caller_identity" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

resource "aws_kms_key" "logs" {
  description         = "chromata ${var.name}: CloudWatch log groups and secrets"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.logs_key.json
}

data "aws_iam_policy_document" "logs_key" {
  #checkov:skip=CKV_AWS_111:a KMS key policy's "*" resource means this key only; use is granted by IAM policies scoped to its ARN
  #checkov:skip=CKV_AWS_356:a KMS key policy's "*" resource means this key only (AWS key-policy semantics)
  #checkov:skip=CKV_AWS_109:the account root administers its own key; this is the AWS default key policy, without it the key is unmanageable
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogsUse"
    actions   = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${var.region}.amazonaws.com"]
    }
  }
}

resource "aws_secretsmanager_secret" "session_key" {
  #checkov:skip=CKV2_AWS_57:the session-signing key is rotated by the institution's procedure (rotating it logs every curator out); no Lambda rotation is deployed
  name       = "chromata/${var.name}/review-session-key"
  kms_key_id = aws_kms_key.logs.arn
}

module "storage" {
  source             = "../../modules/storage"
  name               = var.name
  source_bucket      = var.source_bucket
  derivatives_bucket = var.derivatives_bucket
  tags               = var.tags
}

module "eks" {
  source             = "../../modules/eks"
  name               = var.name
  private_subnet_ids = var.private_subnet_ids
  public_api_cidrs   = var.admin_cidrs
  logs_kms_key_arn   = aws_kms_key.logs.arn
  worker_role_arn    = module.iam.worker_role_arn
  worker_image       = var.worker_image
  worker_image_tag   = var.worker_image_tag
  gpu_nodes_max      = var.gpu_nodes_max
  tags               = var.tags
}

module "iam" {
  source                 = "../../modules/iam"
  name                   = var.name
  region                 = var.region
  account_id             = data.aws_caller_identity.current.account_id
  oidc_provider_arn      = module.eks.oidc_provider_arn
  oidc_provider_url      = module.eks.oidc_provider_url
  source_bucket_arn      = module.storage.source_bucket_arn
  source_prefix          = var.source_prefix
  derivatives_bucket_arn = module.storage.derivatives_bucket_arn
  kms_key_arn            = module.storage.kms_key_arn
  db_resource_id         = module.database.resource_id
  tags                   = var.tags
}

module "database" {
  source                    = "../../modules/database"
  name                      = var.name
  vpc_id                    = var.vpc_id
  private_subnet_ids        = var.private_subnet_ids
  client_security_group_ids = [module.eks.cluster_security_group_id, module.review_app.task_security_group_id]
  kms_key_arn               = module.storage.kms_key_arn
  tags                      = var.tags
}

module "review_app" {
  source             = "../../modules/review_app"
  name               = var.name
  vpc_id             = var.vpc_id
  vpc_cidr           = data.aws_vpc.this.cidr_block
  private_subnet_ids = var.private_subnet_ids
  allowed_cidrs      = var.curator_cidrs
  certificate_arn    = var.certificate_arn
  alb_logs_bucket    = "${var.derivatives_bucket}-logs"
  image              = var.review_image
  image_tag          = var.review_image_tag
  task_role_arn      = module.iam.review_app_role_arn
  review_db_url      = "postgresql+psycopg://chromata_review@${module.database.endpoint}/chromata?sslmode=require"
  outputs_uri        = "s3://${module.storage.derivatives_bucket}/"
  session_secret_arn = aws_secretsmanager_secret.session_key.arn
  kms_key_arn        = aws_kms_key.logs.arn
  tags               = var.tags
}

module "monitoring" {
  source         = "../../modules/monitoring"
  rules_file     = "${path.module}/../../../../dashboards/alerts/chromata-rules.yml"
  dashboard_file = "${path.module}/../../../../dashboards/chromata-pipeline.json"
  depends_on     = [module.eks]
}

module "prefect" {
  source              = "../../modules/prefect"
  collections_toml    = file(var.collections_file)
  worker_image        = var.worker_image
  worker_image_digest = var.worker_image_digest
  ray_address         = module.eks.ray_address
  pushgateway_address = module.monitoring.pushgateway_address
  depends_on          = [module.eks]
}

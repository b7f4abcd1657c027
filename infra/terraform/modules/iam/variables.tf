variable "name" {
  description = "Deployment name, used in role names."
  type        = string
}

variable "region" {
  description = "AWS region of the database (for the rds-db:connect ARN)."
  type        = string
}

variable "account_id" {
  description = "AWS account id (for the rds-db:connect ARN)."
  type        = string
  validation {
    condition     = can(regex("^[0-9]{12}$", var.account_id))
    error_message = "account_id must be 12 digits."
  }
}

variable "oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider (IRSA)."
  type        = string
}

variable "oidc_provider_url" {
  description = "Issuer URL of the EKS cluster's OIDC provider."
  type        = string
}

variable "namespace" {
  description = "Kubernetes namespace of the Ray cluster and flow-run pods."
  type        = string
  default     = "chromata"
}

variable "worker_service_accounts" {
  description = "Service accounts that may assume the worker role (Ray head/workers, Prefect flow runs)."
  type        = list(string)
  default     = ["chromata-ray", "chromata-flows"]
}

variable "source_bucket_arn" {
  description = "ARN of the source (scans) bucket; read only."
  type        = string
}

variable "source_prefix" {
  description = "Prefix under the source bucket that chromata may read (\"\" for the whole bucket)."
  type        = string
  default     = ""
}

variable "source_kms_key_arn" {
  description = "KMS key of the source bucket, if its objects are SSE-KMS encrypted (decrypt only)."
  type        = string
  default     = null
}

variable "derivatives_bucket_arn" {
  description = "ARN of the derivatives bucket (read/write)."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key of the derivatives bucket."
  type        = string
}

variable "db_resource_id" {
  description = "RDS DbiResourceId of the review/Prefect database (for IAM database authentication)."
  type        = string
}

variable "review_db_user" {
  description = "Database user the review app connects as with IAM authentication."
  type        = string
  default     = "chromata_review"
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

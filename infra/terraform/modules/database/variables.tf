variable "name" {
  description = "Deployment name, used in resource names."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the database."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Multi-AZ needs subnets in at least two availability zones."
  }
}

variable "client_security_group_ids" {
  description = "Security groups allowed to connect on 5432 (EKS nodes, review app, Prefect)."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key for storage, the master-password secret and Performance Insights."
  type        = string
}

variable "engine_version" {
  description = "PostgreSQL major.minor version."
  type        = string
  default     = "16.8"
  validation {
    condition     = startswith(var.engine_version, "16.")
    error_message = "The parameter group is for PostgreSQL 16."
  }
}

variable "instance_class" {
  description = "RDS instance class; the queue and Prefect need little (db.t4g.medium is plenty for millions of rows)."
  type        = string
  default     = "db.t4g.medium"
}

variable "storage_gb" {
  description = "Initial storage in GiB (autoscaling up to 4x)."
  type        = number
  default     = 50
  validation {
    condition     = var.storage_gb >= 20
    error_message = "At least 20 GiB."
  }
}

variable "backup_retention_days" {
  description = "Days of automated backups (point-in-time recovery window)."
  type        = number
  default     = 14
  validation {
    condition     = var.backup_retention_days >= 7 && var.backup_retention_days <= 35
    error_message = "Between 7 and 35 days."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

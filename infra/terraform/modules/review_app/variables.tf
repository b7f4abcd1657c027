variable "name" {
  description = "Deployment name, used in resource names."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the load balancer and tasks."
  type        = string
}

variable "vpc_cidr" {
  description = "CIDR of the VPC (the tasks may reach PostgreSQL inside it)."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks (and for an internal load balancer)."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets for an internet-facing load balancer (unused when internal = true)."
  type        = list(string)
  default     = []
}

variable "internal" {
  description = "Put the load balancer on the institution's private network only (recommended with VPN/Direct Connect)."
  type        = bool
  default     = true
}

variable "allowed_cidrs" {
  description = "Networks curators connect from."
  type        = list(string)
  validation {
    condition     = length(var.allowed_cidrs) > 0
    error_message = "List the networks allowed to reach the review app."
  }
}

variable "certificate_arn" {
  description = "ACM certificate for the review app's host name."
  type        = string
}

variable "waf_acl_arn" {
  description = "Optional WAFv2 web ACL to attach to the load balancer."
  type        = string
  default     = null
}

variable "alb_logs_bucket" {
  description = "Bucket for load-balancer access logs (the storage module's -logs bucket)."
  type        = string
}

variable "image" {
  description = "Review app image repository (docker/review.Dockerfile)."
  type        = string
}

variable "image_tag" {
  description = "Pinned image tag."
  type        = string
  validation {
    condition     = var.image_tag != "latest"
    error_message = "Pin an image tag."
  }
}

variable "task_role_arn" {
  description = "Task role from the iam module (read derivatives, connect to the database)."
  type        = string
}

variable "review_db_url" {
  description = "SQLAlchemy URL of the review queue (IAM authentication; no password in it)."
  type        = string
  validation {
    condition     = !can(regex(":[^@/]+@", var.review_db_url))
    error_message = "Do not put a password in the URL; the app authenticates with IAM."
  }
}

variable "outputs_uri" {
  description = "s3:// URI of the derivatives the curators review."
  type        = string
}

variable "session_secret_arn" {
  description = "Secrets Manager secret with the session-signing key."
  type        = string
}

variable "kms_key_arn" {
  description = "KMS key for the log group and the secret."
  type        = string
}

variable "desired_count" {
  description = "Number of review app tasks."
  type        = number
  default     = 2
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

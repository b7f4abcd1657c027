variable "name" {
  description = "Deployment name, used in resource names (e.g. the institution or environment)."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9-]{2,24}$", var.name))
    error_message = "name must be 2-24 characters of lower-case letters, digits and hyphens."
  }
}

variable "source_bucket" {
  description = "Existing bucket holding the scans. chromata only reads it; this module never changes it."
  type        = string
}

variable "derivatives_bucket" {
  description = "Name of the bucket to create for colorized derivatives, manifests and run reports."
  type        = string
  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,56}[a-z0-9]$", var.derivatives_bucket))
    error_message = "derivatives_bucket must be a valid S3 bucket name of at most 58 characters (a -logs bucket is derived from it)."
  }
}

variable "noncurrent_version_days" {
  description = "Days to keep overwritten versions of derivatives (re-runs with other models) before expiry."
  type        = number
  default     = 365
  validation {
    condition     = var.noncurrent_version_days >= 30
    error_message = "Keep old versions at least 30 days."
  }
}

variable "log_retention_days" {
  description = "Days to keep S3 server access logs of the derivatives bucket."
  type        = number
  default     = 400
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

variable "namespace" {
  description = "Namespace (created by the eks module) for the Prefect server and the scheduler."
  type        = string
  default     = "chromata"
}

variable "prefect_chart_version" {
  description = "Version of the prefect-server Helm chart."
  type        = string
  default     = "2025.11.0"
}

variable "database_secret_name" {
  description = "Kubernetes secret with keys prefect-url and review-url (PostgreSQL URLs), filled by the secret manager."
  type        = string
  default     = "chromata-database"
}

variable "collections_toml" {
  description = "Contents of the collections file (chromata.toml): sources, destinations and cron schedules."
  type        = string
  validation {
    condition     = can(regex("\\[\\[collections\\]\\]", var.collections_toml))
    error_message = "collections_toml must define at least one [[collections]] entry."
  }
}

variable "worker_image" {
  description = "chromata worker image repository."
  type        = string
}

variable "worker_image_digest" {
  description = "Image digest (sha256:…) the scheduler runs, for reproducible runs."
  type        = string
  validation {
    condition     = can(regex("^sha256:[0-9a-f]{64}$", var.worker_image_digest))
    error_message = "Give the image as a sha256 digest."
  }
}

variable "ray_address" {
  description = "Ray client address of the RayCluster (eks module output)."
  type        = string
}

variable "pushgateway_address" {
  description = "host:port of the Prometheus Pushgateway (monitoring module output)."
  type        = string
}

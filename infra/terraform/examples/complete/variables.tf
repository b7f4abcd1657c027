variable "name" {
  description = "Deployment name (lower-case letters, digits, hyphens), e.g. museum-prod."
  type        = string
}

variable "region" {
  description = "AWS region."
  type        = string
  default     = "eu-west-1"
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
}

variable "admin_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API (empty = private endpoint only)."
  type        = list(string)
  default     = []
}

variable "curator_cidrs" {
  description = "Networks curators reach the review app from."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the review app host name."
  type        = string
}

variable "source_bucket" {
  description = "Existing bucket of scans (read only)."
  type        = string
}

variable "source_prefix" {
  description = "Prefix of the scans chromata may read."
  type        = string
  default     = ""
}

variable "derivatives_bucket" {
  description = "Bucket to create for colorized derivatives."
  type        = string
}

variable "worker_image" {
  description = "Worker image repository (CUDA build of docker/worker.Dockerfile)."
  type        = string
}

variable "worker_image_tag" {
  description = "Pinned worker image tag for the Ray pods."
  type        = string
}

variable "worker_image_digest" {
  description = "sha256 digest of the same worker image, for the scheduler."
  type        = string
}

variable "review_image" {
  description = "Review app image repository (docker/review.Dockerfile)."
  type        = string
}

variable "review_image_tag" {
  description = "Pinned review app image tag."
  type        = string
}

variable "gpu_nodes_max" {
  description = "Upper bound on GPU nodes."
  type        = number
  default     = 4
}

variable "collections_file" {
  description = "Path of the collections file (chromata.toml) the scheduler runs."
  type        = string
}

variable "tags" {
  description = "Extra tags for every resource."
  type        = map(string)
  default     = {}
}

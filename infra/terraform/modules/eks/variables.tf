variable "name" {
  description = "Deployment name, used in the cluster name."
  type        = string
}

variable "kubernetes_version" {
  description = "EKS Kubernetes version."
  type        = string
  default     = "1.33"
}

variable "private_subnet_ids" {
  description = "Private subnets (at least two availability zones) for the control plane and nodes."
  type        = list(string)
  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "EKS needs subnets in at least two availability zones."
  }
}

variable "public_api_cidrs" {
  description = "CIDRs allowed to reach the Kubernetes API publicly; empty = private endpoint only."
  type        = list(string)
  default     = []
  validation {
    condition     = !contains(var.public_api_cidrs, "0.0.0.0/0")
    error_message = "Do not open the Kubernetes API to the whole internet."
  }
}

variable "logs_kms_key_arn" {
  description = "KMS key for the control-plane log group."
  type        = string
}

variable "cpu_instance_types" {
  description = "Instance types of the CPU node group (Ray head, flow runs, monitoring)."
  type        = list(string)
  default     = ["m7i.2xlarge"]
}

variable "cpu_nodes" {
  description = "Desired CPU nodes."
  type        = number
  default     = 2
}

variable "gpu_instance_types" {
  description = "Instance types of the GPU node group (one colorizer actor per GPU)."
  type        = list(string)
  default     = ["g6.2xlarge"]
}

variable "gpu_nodes_min" {
  description = "GPU nodes kept when idle (0 = scale to zero between nightly runs)."
  type        = number
  default     = 0
}

variable "gpu_nodes_max" {
  description = "Upper bound on GPU nodes (cost guard)."
  type        = number
  default     = 4
  validation {
    condition     = var.gpu_nodes_max >= 1 && var.gpu_nodes_max <= 64
    error_message = "gpu_nodes_max must be between 1 and 64."
  }
}

variable "namespace" {
  description = "Namespace of the Ray cluster and flow-run pods."
  type        = string
  default     = "chromata"
}

variable "worker_service_accounts" {
  description = "Service accounts created in the namespace and bound to the worker IAM role."
  type        = list(string)
  default     = ["chromata-ray", "chromata-flows"]
}

variable "worker_role_arn" {
  description = "IAM role (from the iam module) the worker service accounts assume."
  type        = string
}

variable "worker_image" {
  description = "Container image of the chromata worker (docker/worker.Dockerfile, CUDA build)."
  type        = string
}

variable "worker_image_tag" {
  description = "Tag of the worker image; pin a release, not latest."
  type        = string
  validation {
    condition     = var.worker_image_tag != "latest"
    error_message = "Pin a worker image tag; 'latest' makes runs irreproducible."
  }
}

variable "kuberay_version" {
  description = "Version of the KubeRay operator and ray-cluster Helm charts."
  type        = string
  default     = "1.4.2"
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}

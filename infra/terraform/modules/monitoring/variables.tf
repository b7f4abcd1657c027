variable "namespace" {
  description = "Namespace of the Pushgateway (chromata's namespace)."
  type        = string
  default     = "chromata"
}

variable "rules_file" {
  description = "Path of chromata's Prometheus alert rules (dashboards/alerts/chromata-rules.yml)."
  type        = string
}

variable "dashboard_file" {
  description = "Path of chromata's Grafana dashboard JSON (dashboards/chromata-pipeline.json)."
  type        = string
}

variable "retention" {
  description = "Prometheus retention (e.g. 30d)."
  type        = string
  default     = "30d"
  validation {
    condition     = can(regex("^[0-9]+[dhw]$", var.retention))
    error_message = "retention is a Prometheus duration such as 30d."
  }
}

variable "grafana_admin_secret" {
  description = "Kubernetes secret (keys user, password) with Grafana's admin login, filled by the secret manager."
  type        = string
  default     = "grafana-admin"
}

variable "stack_chart_version" {
  description = "kube-prometheus-stack chart version."
  type        = string
  default     = "79.5.0"
}

variable "pushgateway_chart_version" {
  description = "prometheus-pushgateway chart version."
  type        = string
  default     = "3.4.1"
}

# Prometheus, Alertmanager and Grafana (kube-prometheus-stack) plus a Pushgateway in the EKS cluster,
# loaded with chromata's own alert rules and dashboard from dashboards/ — the same files the test suite
# checks against the metrics the code registers.

locals {
  rules     = yamldecode(file(var.rules_file))
  dashboard = file(var.dashboard_file)
}

resource "helm_release" "pushgateway" {
  name       = "pushgateway"
  repository = "https://prometheus-community.github.io/helm-charts"
  chart      = "prometheus-pushgateway"
  version    = var.pushgateway_chart_version
  namespace  = var.namespace
  values = [yamlencode({
    serviceMonitor = { enabled = true, additionalLabels = { release = "monitoring" } }
    persistentVolume = { enabled = true, size = "2Gi" }
  })]
}

resource "helm_release" "stack" {
  name             = "monitoring"
  repository       = "https://prometheus-community.github.io/helm-charts"
  chart            = "kube-prometheus-stack"
  version          = var.stack_chart_version
  namespace        = "monitoring"
  create_namespace = true
  values = [yamlencode({
    additionalPrometheusRulesMap = { chromata = local.rules }
    prometheus = {
      prometheusSpec = {
        retention                               = var.retention
        serviceMonitorSelectorNilUsesHelmValues = false
      }
    }
    grafana = {
      adminPassword = null
      admin         = { existingSecret = var.grafana_admin_secret, userKey = "user", passwordKey = "password" }
      sidecar       = { dashboards = { enabled = true, label = "grafana_dashboard" } }
    }
  })]
}

resource "kubernetes_config_map_v1" "dashboard" {
  metadata {
    name      = "chromata-dashboard"
    namespace = "monitoring"
    labels    = { grafana_dashboard = "1" }
  }
  data       = { "chromata-pipeline.json" = local.dashboard }
  depends_on = [helm_release.stack]
}

output "pushgateway_address" {
  description = "host:port for CHROMATA_PUSHGATEWAY."
  value       = "pushgateway-prometheus-pushgateway.${var.namespace}.svc.cluster.local:9091"
}

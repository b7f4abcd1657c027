output "prefect_api_url" {
  description = "In-cluster URL of the Prefect API."
  value       = "http://prefect-server.${var.namespace}.svc.cluster.local:4200/api"
}

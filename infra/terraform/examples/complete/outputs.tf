output "derivatives_bucket" {
  description = "Where colorized derivatives, manifests and run reports land."
  value       = module.storage.derivatives_bucket
}

output "review_app_url" {
  description = "Review app load balancer address."
  value       = module.review_app.url
}

output "ray_address" {
  description = "RAY_ADDRESS inside the cluster."
  value       = module.eks.ray_address
}

output "database_endpoint" {
  description = "PostgreSQL endpoint (review queue and Prefect)."
  value       = module.database.endpoint
}

output "prefect_api_url" {
  description = "In-cluster Prefect API URL."
  value       = module.prefect.prefect_api_url
}

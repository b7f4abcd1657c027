output "url" {
  description = "HTTPS address of the review app's load balancer (point a DNS name with the certificate at it)."
  value       = "https://${aws_lb.this.dns_name}"
}

output "task_security_group_id" {
  description = "Security group of the review app tasks (allow it in the database module)."
  value       = aws_security_group.tasks.id
}

output "ecs_cluster_arn" {
  description = "ECS cluster of the review app."
  value       = aws_ecs_cluster.this.arn
}

output "worker_role_arn" {
  description = "Role for Ray pods and flow runs (annotate their service accounts with it)."
  value       = aws_iam_role.worker.arn
}

output "review_app_role_arn" {
  description = "Task role of the review app."
  value       = aws_iam_role.review_app.arn
}

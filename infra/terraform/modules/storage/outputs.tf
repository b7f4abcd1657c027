output "source_bucket_arn" {
  description = "ARN of the (read-only) source bucket."
  value       = data.aws_s3_bucket.source.arn
}

output "derivatives_bucket" {
  description = "Name of the derivatives bucket."
  value       = aws_s3_bucket.derivatives.id
}

output "derivatives_bucket_arn" {
  description = "ARN of the derivatives bucket."
  value       = aws_s3_bucket.derivatives.arn
}

output "kms_key_arn" {
  description = "Customer-managed KMS key encrypting the derivatives."
  value       = aws_kms_key.derivatives.arn
}

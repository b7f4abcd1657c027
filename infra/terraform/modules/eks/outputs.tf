output "cluster_name" {
  description = "EKS cluster name."
  value       = aws_eks_cluster.this.name
}

output "cluster_endpoint" {
  description = "Kubernetes API endpoint."
  value       = aws_eks_cluster.this.endpoint
}

output "cluster_ca" {
  description = "Base64 certificate authority of the cluster."
  value       = aws_eks_cluster.this.certificate_authority[0].data
}

output "cluster_security_group_id" {
  description = "Security group EKS created for the cluster (nodes and control plane)."
  value       = aws_eks_cluster.this.vpc_config[0].cluster_security_group_id
}

output "oidc_provider_arn" {
  description = "IRSA OIDC provider ARN."
  value       = aws_iam_openid_connect_provider.this.arn
}

output "oidc_provider_url" {
  description = "IRSA OIDC issuer URL."
  value       = aws_iam_openid_connect_provider.this.url
}

output "ray_address" {
  description = "Ray client address of the RayCluster, for RAY_ADDRESS of flow runs."
  value       = "ray://chromata-kuberay-head-svc.${var.namespace}.svc.cluster.local:10001"
}

# EKS for the Ray cluster: a control plane with private endpoint and KMS-encrypted secrets, a CPU node
# group (Ray head, flow runs, monitoring) and a GPU node group (Ray colorizer workers, tainted so only
# GPU pods land there), the IRSA OIDC provider, the KubeRay operator and a RayCluster from its chart.

resource "aws_kms_key" "eks" {
  description         = "chromata ${var.name}: EKS secrets encryption"
  enable_key_rotation = true
  policy              = data.aws_iam_policy_document.eks_key.json
  tags                = var.tags
}

data "aws_caller_identity" "current" {}

data "aws_iam_policy_document" "eks_key" {
  #checkov:skip=CKV_AWS_111:a KMS key policy's "*" resource means this key only; the cluster role's use is granted by EKS through this account statement
  #checkov:skip=CKV_AWS_356:a KMS key policy's "*" resource means this key only (AWS key-policy semantics)
  #checkov:skip=CKV_AWS_109:the account root administers its own key; this is the AWS default key policy, without it the key is unmanageable
  statement {
    sid       = "AccountAdministers"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:aws:iam::${data.aws_caller_identity.current.account_id}:root"]
    }
  }
}

resource "aws_cloudwatch_log_group" "eks" {
  name              = "/aws/eks/chromata-${var.name}/cluster"
  retention_in_days = 365
  kms_key_id        = var.logs_kms_key_arn
  tags              = var.tags
}

data "aws_iam_policy_document" "cluster_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["eks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "cluster" {
  name               = "chromata-${var.name}-eks"
  assume_role_policy = data.aws_iam_policy_document.cluster_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "cluster" {
  role       = aws_iam_role.cluster.name
  policy_arn = "arn:aws:iam::aws:policy/AmazonEKSClusterPolicy"
}

resource "aws_eks_cluster" "this" {
  name                      = "chromata-${var.name}"
  role_arn                  = aws_iam_role.cluster.arn
  version                   = var.kubernetes_version
  enabled_cluster_log_types = ["api", "audit", "authenticator", "controllerManager", "scheduler"]

  vpc_config {
    subnet_ids              = var.private_subnet_ids
    endpoint_private_access = true
    endpoint_public_access  = length(var.public_api_cidrs) > 0
    public_access_cidrs     = var.public_api_cidrs
  }

  encryption_config {
    provider {
      key_arn = aws_kms_key.eks.arn
    }
    resources = ["secrets"]
  }

  depends_on = [aws_iam_role_policy_attachment.cluster, aws_cloudwatch_log_group.eks]
  tags       = var.tags
}

data "tls_certificate" "oidc" {
  url = aws_eks_cluster.this.identity[0].oidc[0].issuer
}

resource "aws_iam_openid_connect_provider" "this" {
  url             = aws_eks_cluster.this.identity[0].oidc[0].issuer
  client_id_list  = ["sts.amazonaws.com"]
  thumbprint_list = [data.tls_certificate.oidc.certificates[0].sha1_fingerprint]
  tags            = var.tags
}

data "aws_iam_policy_document" "node_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ec2.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "node" {
  name               = "chromata-${var.name}-node"
  assume_role_policy = data.aws_iam_policy_document.node_trust.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "node" {
  for_each = toset([
    "arn:aws:iam::aws:policy/AmazonEKSWorkerNodePolicy",
    "arn:aws:iam::aws:policy/AmazonEKS_CNI_Policy",
    "arn:aws:iam::aws:policy/AmazonEC2ContainerRegistryReadOnly",
  ])
  role       = aws_iam_role.node.name
  policy_arn = each.value
}

resource "aws_eks_node_group" "cpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "cpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids
  instance_types  = var.cpu_instance_types
  scaling_config {
    min_size     = 1
    desired_size = var.cpu_nodes
    max_size     = max(var.cpu_nodes, 6)
  }
  labels     = { "chromata/pool" = "cpu" }
  depends_on = [aws_iam_role_policy_attachment.node]
  tags       = var.tags
}

resource "aws_eks_node_group" "gpu" {
  cluster_name    = aws_eks_cluster.this.name
  node_group_name = "gpu"
  node_role_arn   = aws_iam_role.node.arn
  subnet_ids      = var.private_subnet_ids
  instance_types  = var.gpu_instance_types
  ami_type        = "AL2023_x86_64_NVIDIA"
  scaling_config {
    min_size     = 0
    desired_size = var.gpu_nodes_min
    max_size     = var.gpu_nodes_max
  }
  taint {
    key    = "nvidia.com/gpu"
    value  = "present"
    effect = "NO_SCHEDULE"
  }
  labels     = { "chromata/pool" = "gpu" }
  depends_on = [aws_iam_role_policy_attachment.node]
  tags       = var.tags
}

resource "kubernetes_namespace_v1" "chromata" {
  metadata {
    name = var.namespace
  }
  depends_on = [aws_eks_node_group.cpu]
}

resource "kubernetes_service_account_v1" "workers" {
  for_each = toset(var.worker_service_accounts)
  metadata {
    name        = each.value
    namespace   = kubernetes_namespace_v1.chromata.metadata[0].name
    annotations = { "eks.amazonaws.com/role-arn" = var.worker_role_arn }
  }
}

resource "helm_release" "kuberay_operator" {
  name             = "kuberay-operator"
  repository       = "https://ray-project.github.io/kuberay-helm/"
  chart            = "kuberay-operator"
  version          = var.kuberay_version
  namespace        = "kuberay-system"
  create_namespace = true
  depends_on       = [aws_eks_node_group.cpu]
}

resource "helm_release" "ray_cluster" {
  name       = "chromata"
  repository = "https://ray-project.github.io/kuberay-helm/"
  chart      = "ray-cluster"
  version    = var.kuberay_version
  namespace  = kubernetes_namespace_v1.chromata.metadata[0].name
  values = [yamlencode({
    image = { repository = var.worker_image, tag = var.worker_image_tag }
    head = {
      serviceAccountName = "chromata-ray"
      resources = {
        requests = { cpu = "2", memory = "8Gi" }
        limits   = { cpu = "2", memory = "8Gi" }
      }
      nodeSelector = { "chromata/pool" = "cpu" }
    }
    worker = {
      groupName          = "gpu"
      serviceAccountName = "chromata-ray"
      replicas           = var.gpu_nodes_min
      minReplicas        = 0
      maxReplicas        = var.gpu_nodes_max
      resources = {
        requests = { cpu = "6", memory = "24Gi", "nvidia.com/gpu" = "1" }
        limits   = { cpu = "6", memory = "24Gi", "nvidia.com/gpu" = "1" }
      }
      nodeSelector = { "chromata/pool" = "gpu" }
      tolerations  = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
    }
  })]
  depends_on = [helm_release.kuberay_operator, kubernetes_service_account_v1.workers]
}

# Orchestration inside the EKS cluster: the Prefect server (Helm chart, PostgreSQL on RDS) and the
# chromata scheduler — `chromata serve --collections …`, which registers one cron deployment per
# collection and runs its flows; flows reach the RayCluster at ray_address and push metrics to the
# Pushgateway. The collections file is a ConfigMap; database URLs come from a Kubernetes secret that
# the institution's secret manager (External Secrets, CSI driver) fills — never from Terraform variables.

resource "helm_release" "prefect_server" {
  name       = "prefect-server"
  repository = "https://prefecthq.github.io/prefect-helm"
  chart      = "prefect-server"
  version    = var.prefect_chart_version
  namespace  = var.namespace
  values = [yamlencode({
    server = {
      uiConfig = { prefectUiApiUrl = "http://prefect-server.${var.namespace}.svc.cluster.local:4200/api" }
      env = [
        { name = "PREFECT_SERVER_ANALYTICS_ENABLED", value = "false" },
        {
          name      = "PREFECT_API_DATABASE_CONNECTION_URL"
          valueFrom = { secretKeyRef = { name = var.database_secret_name, key = "prefect-url" } }
        },
      ]
    }
    postgresql = { enabled = false }
  })]
}

resource "kubernetes_config_map_v1" "collections" {
  metadata {
    name      = "chromata-collections"
    namespace = var.namespace
  }
  data = { "chromata.toml" = var.collections_toml }
}

resource "kubernetes_deployment_v1" "scheduler" {
  metadata {
    name      = "chromata-scheduler"
    namespace = var.namespace
    labels    = { app = "chromata-scheduler" }
  }
  spec {
    replicas = 1
    selector {
      match_labels = { app = "chromata-scheduler" }
    }
    template {
      metadata {
        labels = { app = "chromata-scheduler" }
      }
      spec {
        service_account_name            = "chromata-flows"
        automount_service_account_token = true
        security_context {
          run_as_non_root = true
          run_as_user     = 10001
          seccomp_profile {
            type = "RuntimeDefault"
          }
        }
        container {
          name              = "scheduler"
          image             = "${var.worker_image}@${var.worker_image_digest}"
          image_pull_policy = "Always"
          command           = ["chromata", "serve", "--collections", "/config/chromata.toml"]
          env {
            name  = "PREFECT_API_URL"
            value = "http://prefect-server.${var.namespace}.svc.cluster.local:4200/api"
          }
          env {
            name  = "RAY_ADDRESS"
            value = var.ray_address
          }
          env {
            name  = "CHROMATA_PUSHGATEWAY"
            value = var.pushgateway_address
          }
          env {
            name = "CHROMATA_REVIEW_DB"
            value_from {
              secret_key_ref {
                name = var.database_secret_name
                key  = "review-url"
              }
            }
          }
          resources {
            requests = { cpu = "500m", memory = "1Gi" }
            limits   = { cpu = "2", memory = "4Gi" }
          }
          security_context {
            allow_privilege_escalation = false
            read_only_root_filesystem  = true
            capabilities {
              drop = ["ALL"]
            }
          }
          liveness_probe {
            exec {
              command = ["chromata", "version"]
            }
            period_seconds = 300
          }
          readiness_probe {
            exec {
              command = ["chromata", "version"]
            }
            period_seconds = 300
          }
          volume_mount {
            name       = "config"
            mount_path = "/config"
            read_only  = true
          }
          volume_mount {
            name       = "tmp"
            mount_path = "/tmp"
          }
        }
        volume {
          name = "config"
          config_map {
            name = kubernetes_config_map_v1.collections.metadata[0].name
          }
        }
        volume {
          name = "tmp"
          empty_dir {}
        }
      }
    }
  }
  depends_on = [helm_release.prefect_server]
}

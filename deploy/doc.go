// Package deploy holds how ulat agent is deployed: kubernetes/, a kustomize
// base of a DaemonSet with its config, RBAC and PodMonitor;
// example-overlay/, an overlay of it; systemd/, a unit for hosts without
// Kubernetes; and Containerfile, the image. It has no code: its tests
// render the manifests as kubectl does and check them (deploy_test.go).
package deploy

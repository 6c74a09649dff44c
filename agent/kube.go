package agent

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"
)

// pod is what the agent needs of a Kubernetes pod.
type pod struct {
	Name      string
	Namespace string
	UID       string
	Labels    map[string]string
	// Containers maps a container's runtime id to its name.
	Containers map[string]string
}

// podList is the part of the API's PodList the agent reads.
type podList struct {
	Items []struct {
		Metadata struct {
			Name      string            `json:"name"`
			Namespace string            `json:"namespace"`
			UID       string            `json:"uid"`
			Labels    map[string]string `json:"labels"`
		} `json:"metadata"`
		Status struct {
			ContainerStatuses     []containerStatus `json:"containerStatuses"`
			InitContainerStatuses []containerStatus `json:"initContainerStatuses"`
		} `json:"status"`
	} `json:"items"`
}

type containerStatus struct {
	Name        string `json:"name"`
	ContainerID string `json:"containerID"` // containerd://<id>, cri-o://<id>, docker://<id>
}

const (
	serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"
	// podsRefreshAfter is how old the list of pods may be before a pod
	// it does not have makes the agent ask again.
	podsRefreshAfter = time.Second
)

// pods are the pods of the agent's node, by uid, read from the API server
// when a process is in a pod the agent does not know yet.
type pods struct {
	url    string // the pods of the node
	token  string // file
	client *http.Client

	mu      sync.Mutex
	byUID   map[string]*pod
	fetched time.Time
	lastErr error
}

// newPods is nil outside Kubernetes (no API server named or found).
func newPods(k Kubernetes) (*pods, error) {
	api := k.API
	if api == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, nil
		}
		api = "https://" + net.JoinHostPort(host, port)
	}
	node := k.Node
	if node == "" {
		node = os.Getenv("NODE_NAME")
	}
	if node == "" {
		return nil, errors.New("kubernetes: the node is not known: set NODE_NAME (the downward API's spec.nodeName) or kubernetes.node")
	}
	p := &pods{token: k.TokenFile, byUID: map[string]*pod{}}
	if p.token == "" && k.API == "" {
		p.token = serviceAccount + "/token"
	}
	ca := k.CAFile
	if ca == "" && strings.HasPrefix(api, "https://") {
		ca = serviceAccount + "/ca.crt"
	}
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("kubernetes: CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kubernetes: CA %s: no certificate in it", ca)
		}
		tlsConfig.RootCAs = pool
	}
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	p.url = strings.TrimSuffix(api, "/") + "/api/v1/pods?fieldSelector=" + url.QueryEscape("spec.nodeName="+node)
	return p, nil
}

// byUID is the pod of uid, asking the API server again when the list is
// older than podsRefreshAfter and lacks it; nil when it has no such pod.
func (p *pods) get(uid string) (*pod, error) {
	if p == nil || uid == "" {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if pd := p.byUID[uid]; pd != nil {
		return pd, nil
	}
	if time.Since(p.fetched) < podsRefreshAfter {
		return nil, p.lastErr
	}
	p.fetched = time.Now()
	p.lastErr = p.fetch()
	return p.byUID[uid], p.lastErr
}

// fetch reads the node's pods; called with mu held.
func (p *pods) fetch() error {
	req, err := http.NewRequest("GET", p.url, nil)
	if err != nil {
		return fmt.Errorf("kubernetes: %w", err)
	}
	if p.token != "" {
		tok, err := os.ReadFile(p.token) // read each time: the kubelet rotates it
		if err != nil {
			return fmt.Errorf("kubernetes: token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("kubernetes: list pods: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("kubernetes: list pods: %s (the agent's service account needs get, list and watch on pods)", resp.Status)
	}
	var list podList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return fmt.Errorf("kubernetes: list pods: %w", err)
	}
	byUID := map[string]*pod{}
	for _, it := range list.Items {
		pd := &pod{Name: it.Metadata.Name, Namespace: it.Metadata.Namespace, UID: it.Metadata.UID, Labels: it.Metadata.Labels, Containers: map[string]string{}}
		for _, c := range append(it.Status.ContainerStatuses, it.Status.InitContainerStatuses...) {
			if _, id, ok := strings.Cut(c.ContainerID, "://"); ok {
				pd.Containers[id] = c.Name
			}
		}
		byUID[pd.UID] = pd
	}
	p.byUID = byUID
	return nil
}

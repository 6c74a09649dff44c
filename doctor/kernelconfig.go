package doctor

import (
	"bufio"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// readKernelConfig reads the running kernel's configuration from
// /proc/config.gz or /boot/config-RELEASE; nil when neither can be read.
func readKernelConfig(release string) (map[string]string, string) {
	if f, err := os.Open("/proc/config.gz"); err == nil {
		defer f.Close()
		if zr, err := gzip.NewReader(f); err == nil {
			if cfg, err := parseKernelConfig(zr); err == nil {
				return cfg, "/proc/config.gz"
			}
		}
	}
	if release != "" {
		p := filepath.Join("/boot", "config-"+release)
		if f, err := os.Open(p); err == nil {
			defer f.Close()
			if cfg, err := parseKernelConfig(f); err == nil {
				return cfg, p
			}
		}
	}
	return nil, ""
}

// parseKernelConfig reads a kernel .config: CONFIG_X=value lines, and
// "# CONFIG_X is not set", which it records as "n".
func parseKernelConfig(r io.Reader) (map[string]string, error) {
	cfg := map[string]string{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if name, ok := strings.CutPrefix(line, "# "); ok {
			if name, ok = strings.CutSuffix(name, " is not set"); ok && strings.HasPrefix(name, "CONFIG_") {
				cfg[name] = "n"
			}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok && strings.HasPrefix(k, "CONFIG_") {
			cfg[k] = strings.Trim(v, `"`)
		}
	}
	return cfg, sc.Err()
}

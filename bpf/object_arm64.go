package bpf

import _ "embed"

// Object is the compiled CO-RE BPF object for arm64.
//
//go:embed ulat_arm64.bpf.o
var Object []byte

// A fake Docker engine for docker-proxy's tests, written the way the real one is: Go's net/http
// (keep-alive: many requests per connection, the connection kept open after an ordinary error
// response; only a hijacked attach turns it into a raw stream) and Go's encoding/json decoding
// a create body into structs shaped like Docker's (keys matched case-insensitively, a repeated
// key decoded INTO what the first one filled), with the engine's backward-compatible reading of
// HostConfig fields at the top level of the body (runconfig.ContainerConfigWrapper).
//
// Usage: fake_engine SOCKET. Besides the engine endpoints the tests use, GET /_fake/log returns
// every request it received, with the decoded create bodies (what the engine would run).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// The fields of Docker's types (api/types/container, mount, network) that matter for security;
// others are ignored by encoding/json exactly as the engine ignores unknown fields.
type Config struct {
	Hostname     string
	User         string
	Env          []string
	Cmd          []string
	Image        string
	Volumes      map[string]struct{}
	WorkingDir   string
	Entrypoint   []string
	Labels       map[string]string
	ExposedPorts map[string]struct{}
}

type DriverConfig struct {
	Name    string
	Options map[string]string
}

type Mount struct {
	Type          string
	Source        string
	Target        string
	ReadOnly      bool
	BindOptions   *struct{ Propagation string }
	VolumeOptions *struct {
		NoCopy       bool
		Labels       map[string]string
		DriverConfig *DriverConfig
	}
	TmpfsOptions *struct {
		SizeBytes int64
		Mode      uint32
	}
}

type HostConfig struct {
	Binds           []string
	NetworkMode     string
	PortBindings    map[string][]map[string]string
	AutoRemove      bool
	VolumeDriver    string
	VolumesFrom     []string
	CapAdd          []string
	CapDrop         []string
	Capabilities    []string
	CgroupnsMode    string
	Dns             []string
	ExtraHosts      []string
	IpcMode         string
	Cgroup          string
	Links           []string
	OomScoreAdj     int
	PidMode         string
	Privileged      bool
	PublishAllPorts bool
	ReadonlyRootfs  bool
	SecurityOpt     []string
	Tmpfs           map[string]string
	UTSMode         string
	UsernsMode      string
	ShmSize         int64
	Sysctls         map[string]string
	Runtime         string
	Memory          int64
	MemorySwap      int64
	CpuShares       int64
	NanoCpus        int64
	PidsLimit       *int64
	CgroupParent    string
	Devices         []map[string]string
	DeviceRequests  []map[string]interface{}
	OomKillDisable  *bool
	Init            *bool
	Mounts          []Mount
	MaskedPaths     []string
	ReadonlyPaths   []string
	LogConfig       struct {
		Type   string
		Config map[string]string
	}
}

type NetworkingConfig struct {
	EndpointsConfig map[string]*struct {
		Aliases   []string
		NetworkID string
	}
}

// runconfig.ContainerConfigWrapper (engine 20.10): the embedded HostConfig reads host fields
// at the top level of the body.
type ContainerConfigWrapper struct {
	*Config
	InnerHostConfig  *HostConfig       `json:"HostConfig,omitempty"`
	NetworkingConfig *NetworkingConfig `json:"NetworkingConfig,omitempty"`
	*HostConfig
}

// getHostConfig as in the engine: the inner HostConfig, or the top-level one when there is none.
func (w *ContainerConfigWrapper) getHostConfig() *HostConfig {
	hc := w.HostConfig
	if hc == nil && w.InnerHostConfig != nil {
		hc = w.InnerHostConfig
	} else if w.InnerHostConfig != nil {
		if hc.Memory != 0 && w.InnerHostConfig.Memory == 0 {
			w.InnerHostConfig.Memory = hc.Memory
		}
		hc = w.InnerHostConfig
	}
	return hc
}

type Entry struct {
	Method           string
	Target           string
	Upgrade          string
	Config           *Config           `json:",omitempty"`
	HostConfig       *HostConfig       `json:",omitempty"`
	NetworkingConfig *NetworkingConfig `json:",omitempty"`
}

type Engine struct {
	mu         sync.Mutex
	log        []Entry
	containers map[string]Entry
	next       int
}

const minVersion, maxVersion = "1.12", "1.41"

var versioned = regexp.MustCompile(`^/v([0-9.]+)(/.*)$`)

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

func jsonError(w http.ResponseWriter, status int, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"message": message})
}

func writeJSON(w http.ResponseWriter, status int, v interface{}) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (e *Engine) record(entry Entry) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.log = append(e.log, entry)
}

func (e *Engine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if path == "/_fake/log" {
		e.mu.Lock()
		defer e.mu.Unlock()
		writeJSON(w, 200, e.log)
		return
	}
	entry := Entry{Method: r.Method, Target: r.RequestURI, Upgrade: r.Header.Get("Upgrade")}
	w.Header().Set("Api-Version", maxVersion)
	if m := versioned.FindStringSubmatch(path); m != nil {
		path = m[2]
		if versionLess(maxVersion, m[1]) {
			e.record(entry)
			jsonError(w, 400, fmt.Sprintf("client version %s is too new. Maximum supported API version is %s", m[1], maxVersion))
			return
		}
		if versionLess(m[1], minVersion) {
			e.record(entry)
			jsonError(w, 400, fmt.Sprintf("client version %s is too old. Minimum supported API version is %s", m[1], minVersion))
			return
		}
	}
	// httputils.ParseForm: Go rejects e.g. a ';' in the query, after the route was matched.
	if err := r.ParseForm(); err != nil {
		e.record(entry)
		jsonError(w, 400, err.Error())
		return
	}
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	switch {
	case path == "/_ping":
		e.record(entry)
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("OK"))
	case path == "/version":
		e.record(entry)
		writeJSON(w, 200, map[string]string{"Version": "20.10.24", "ApiVersion": maxVersion, "MinAPIVersion": minVersion})
	case len(parts) >= 3 && parts[0] == "images" && parts[len(parts)-1] == "json" && r.Method == "GET":
		e.record(entry)
		name := strings.Join(parts[1:len(parts)-1], "/")
		switch {
		case strings.HasPrefix(name, "downlink/root"):
			writeJSON(w, 200, map[string]interface{}{"Id": "sha256:1", "Config": map[string]string{"User": ""}})
		case strings.HasPrefix(name, "downlink/"):
			writeJSON(w, 200, map[string]interface{}{"Id": "sha256:2", "Config": map[string]string{"User": "astro"}})
		default:
			jsonError(w, 404, "No such image: "+name)
		}
	case path == "/containers/create" && r.Method == "POST":
		var wrapper ContainerConfigWrapper
		if err := json.NewDecoder(r.Body).Decode(&wrapper); err != nil {
			e.record(entry)
			jsonError(w, 400, err.Error())
			return
		}
		entry.Config, entry.HostConfig, entry.NetworkingConfig = wrapper.Config, wrapper.getHostConfig(), wrapper.NetworkingConfig
		e.record(entry)
		e.mu.Lock()
		e.next++
		id := fmt.Sprintf("%064x", e.next)
		if e.containers == nil {
			e.containers = map[string]Entry{}
		}
		e.containers[id] = entry
		e.mu.Unlock()
		writeJSON(w, 201, map[string]interface{}{"Id": id, "Warnings": []string{}})
	case len(parts) >= 2 && parts[0] == "containers":
		e.record(entry)
		e.mu.Lock()
		c, ok := e.containers[parts[1]]
		e.mu.Unlock()
		action := ""
		if len(parts) > 2 {
			action = parts[2]
		}
		if !ok && action != "exec" {
			jsonError(w, 404, "No such container: "+parts[1])
			return
		}
		switch action {
		case "json":
			writeJSON(w, 200, map[string]interface{}{"Id": parts[1], "Config": c.Config, "HostConfig": c.HostConfig,
				"State": map[string]interface{}{"Running": false}})
		case "start":
			w.WriteHeader(204)
		case "wait":
			writeJSON(w, 200, map[string]int{"StatusCode": 0})
		case "exec":
			writeJSON(w, 201, map[string]string{"Id": "exec-would-run"})
		case "attach":
			e.attach(w, r)
		case "":
			if r.Method == "DELETE" {
				e.mu.Lock()
				delete(e.containers, parts[1])
				e.mu.Unlock()
				w.WriteHeader(204)
				return
			}
			jsonError(w, 404, "page not found")
		default:
			jsonError(w, 404, "page not found")
		}
	default:
		e.record(entry)
		jsonError(w, 404, "page not found")
	}
}

// attach like the engine: hijack; "101 UPGRADED" when the client asked for an upgrade, else a
// raw-stream 200; then echo what the client sends, prefixed, until it half-closes.
func (e *Engine) attach(w http.ResponseWriter, r *http.Request) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if r.Header.Get("Upgrade") != "" {
		fmt.Fprint(conn, "HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n")
	} else {
		fmt.Fprint(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.docker.raw-stream\r\n\r\n")
	}
	reader := bufio.NewReader(buf)
	chunk := make([]byte, 65536)
	for {
		n, err := reader.Read(chunk)
		if n > 0 {
			conn.Write(append([]byte("echo:"), chunk[:n]...))
		}
		if err != nil {
			break
		}
	}
	conn.Write([]byte("bye"))
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fake_engine SOCKET")
		os.Exit(2)
	}
	os.Remove(os.Args[1])
	listener, err := net.Listen("unix", os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("listening")
	http.Serve(listener, &Engine{})
}

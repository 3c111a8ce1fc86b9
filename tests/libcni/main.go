// A small runtime over libcni, the library containerd, CRI-O and Podman call, for
// tests/cni.rs: it runs one operation of a network configuration list on a container,
// as those runtimes do, and prints the result of ADD.
//
//	libcni-driver CONFLIST PLUGIN_DIR CACHE_DIR add|check|del CONTAINER_ID NETNS IFNAME [PORT_MAPPINGS_JSON]
//
// Built by the test with the system's libcni (Debian: golang-github-appc-cni-dev):
// GO111MODULE=off GOPATH=/usr/share/gocode go build.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/containernetworking/cni/libcni"
)

func fail(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", a...)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 8 {
		fail("usage: %s CONFLIST PLUGIN_DIR CACHE_DIR add|check|del ID NETNS IFNAME [PORTS]", os.Args[0])
	}
	list, err := libcni.ConfListFromFile(os.Args[1])
	if err != nil {
		fail("conflist: %v", err)
	}
	cni := libcni.NewCNIConfigWithCacheDir([]string{os.Args[2]}, os.Args[3], nil)
	rt := &libcni.RuntimeConf{
		ContainerID: os.Args[5],
		NetNS:       os.Args[6],
		IfName:      os.Args[7],
		Args:        [][2]string{{"IgnoreUnknown", "1"}, {"K8S_POD_NAMESPACE", "default"}, {"K8S_POD_NAME", os.Args[5]}},
	}
	if len(os.Args) > 8 {
		var ports []map[string]interface{}
		if err := json.Unmarshal([]byte(os.Args[8]), &ports); err != nil {
			fail("port mappings: %v", err)
		}
		rt.CapabilityArgs = map[string]interface{}{"portMappings": ports}
	}
	ctx := context.Background()
	switch os.Args[4] {
	case "add":
		res, err := cni.AddNetworkList(ctx, list, rt)
		if err != nil {
			fail("add: %v", err)
		}
		out, err := json.Marshal(res)
		if err != nil {
			fail("result: %v", err)
		}
		fmt.Println(string(out))
	case "check":
		if err := cni.CheckNetworkList(ctx, list, rt); err != nil {
			fail("check: %v", err)
		}
	case "del":
		if err := cni.DelNetworkList(ctx, list, rt); err != nil {
			fail("del: %v", err)
		}
	default:
		fail("unknown operation %s", os.Args[4])
	}
}

// CoreDNS with only the plugins the local cluster's Corefile uses (cluster DNS for pods), after
// CoreDNS's documented way of building with a chosen plugin set: a main package that imports them.
// Leaving out the cloud DNS plugins keeps the build to a fraction of upstream's dependency tree.
package main

import (
	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/forward"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}

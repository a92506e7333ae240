package main

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// A port the kernel hands out as the local end of an outbound connection can be
// taken by any process between the moment a port is picked and the moment it is
// bound, and again while a restarted harness rebinds the ports of its
// state.json. Ports below the kernel's ephemeral range are never handed out that
// way, so freePorts picks there when the range leaves room.
const lowestPort = 20000

// freePorts returns n distinct free loopback ports (all held open while
// picking, so they differ).
func freePorts(n int) ([]int, error) {
	var ports []int
	below := ephemeralLow()
	for attempt := 0; len(ports) < n; attempt++ {
		random := below > lowestPort+1000 && attempt < 100*n
		addr := "127.0.0.1:0"
		if random {
			addr = fmt.Sprintf("127.0.0.1:%d", lowestPort+rand.IntN(below-lowestPort))
		}
		l, err := net.Listen("tcp", addr)
		if err != nil && random {
			continue // taken: try another
		}
		if err != nil {
			return nil, err
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// ephemeralLow is the first port of the kernel's ephemeral range, or 0 when it
// cannot be read.
func ephemeralLow() int {
	data, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 0
	}
	fields := strings.Fields(string(data))
	if len(fields) == 0 {
		return 0
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 0
	}
	return low
}

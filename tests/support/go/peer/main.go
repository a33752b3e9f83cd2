// Command gopeer is the tests' real Go etcd client (etcd's clientv3, its naming/endpoints
// manager and its gRPC resolver), so that what the dashboard writes is read back by the
// framework's own code, and what that code writes is read by the dashboard.
//
// Each subcommand prints JSON lines on stdout; errors go to stderr with exit code 1.
//
//	list  -endpoints E -target T             the manager's List, one line
//	watch -endpoints E -target T             NewWatchChannel: one line per update batch
//	add   -endpoints E -target T -key K -addr A [-ttl S] [-metadata JSON]
//	                                         AddEndpoint on a kept-alive lease; then reads
//	                                         stdin: "delete" (DeleteEndpoint), "revoke",
//	                                         "stop" (stop heartbeats), EOF exits
//	serve -listen 127.0.0.1:0                a gRPC health server; prints its address
//	dial  -endpoints E -target T             a gRPC client on etcd:///T: one health Check,
//	                                         prints the status and the peer it reached
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/naming/endpoints"
	"go.etcd.io/etcd/client/v3/naming/resolver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"
)

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "gopeer: "+format+"\n", args...)
	os.Exit(1)
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail("json: %v", err)
	}
	fmt.Println(string(b))
}

func client(eps string) *clientv3.Client {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints: strings.Split(eps, ","), DialTimeout: 10 * time.Second,
	})
	if err != nil {
		fail("connect %s: %v", eps, err)
	}
	return cli
}

// manager: a client of eps and etcd's endpoints manager of target on it.
func manager(eps, target string) (*clientv3.Client, endpoints.Manager) {
	cli := client(eps)
	em, err := endpoints.NewManager(cli, target)
	if err != nil {
		fail("manager: %v", err)
	}
	return cli, em
}

func main() {
	if len(os.Args) < 2 {
		fail("usage: gopeer list|watch|add|serve|dial [flags]")
	}
	cmd, fs := os.Args[1], flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	eps := fs.String("endpoints", "127.0.0.1:2379", "etcd endpoints")
	target := fs.String("target", "", "the naming target")
	key := fs.String("key", "", "endpoint key (add)")
	addr := fs.String("addr", "", "endpoint address (add)")
	ttl := fs.Int64("ttl", 30, "lease TTL (add)")
	meta := fs.String("metadata", "", "endpoint metadata as JSON (add)")
	listen := fs.String("listen", "127.0.0.1:0", "listen address (serve)")
	timeout := fs.Duration("timeout", 20*time.Second, "dial/list deadline")
	_ = fs.Parse(os.Args[2:])
	switch cmd {
	case "list":
		cli, em := manager(*eps, *target)
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		m, err := em.List(ctx)
		if err != nil {
			fail("list: %v", err)
		}
		emit(m)
	case "watch":
		cli, em := manager(*eps, *target)
		defer cli.Close()
		ch, err := em.NewWatchChannel(context.Background())
		if err != nil {
			fail("watch: %v", err)
		}
		for batch := range ch {
			emit(batch)
		}
	case "add":
		runAdd(*eps, *target, *key, *addr, *ttl, *meta)
	case "serve":
		lis, err := net.Listen("tcp", *listen)
		if err != nil {
			fail("listen: %v", err)
		}
		srv := grpc.NewServer()
		healthpb.RegisterHealthServer(srv, health.NewServer())
		emit(map[string]string{"listening": lis.Addr().String()})
		if err := srv.Serve(lis); err != nil {
			fail("serve: %v", err)
		}
	case "dial":
		cli := client(*eps)
		defer cli.Close()
		builder, err := resolver.NewBuilder(cli)
		if err != nil {
			fail("resolver: %v", err)
		}
		conn, err := grpc.NewClient("etcd:///"+*target, grpc.WithResolvers(builder),
			grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fail("dial: %v", err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		var p peer.Peer
		resp, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{},
			grpc.WaitForReady(true), grpc.Peer(&p))
		if err != nil {
			fail("check: %v", err)
		}
		emit(map[string]string{"status": resp.GetStatus().String(), "peer": p.Addr.String()})
	default:
		fail("unknown command %q", cmd)
	}
}

func runAdd(eps, target, key, addr string, ttl int64, meta string) {
	cli, em := manager(eps, target)
	defer cli.Close()
	var md any
	if meta != "" {
		if err := json.Unmarshal([]byte(meta), &md); err != nil {
			fail("metadata: %v", err)
		}
	}
	ctx := context.Background()
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		fail("grant: %v", err)
	}
	if err := em.AddEndpoint(ctx, key, endpoints.Endpoint{Addr: addr, Metadata: md},
		clientv3.WithLease(lease.ID)); err != nil {
		fail("add: %v", err)
	}
	kctx, stop := context.WithCancel(ctx)
	alive, err := cli.KeepAlive(kctx, lease.ID)
	if err != nil {
		fail("keepalive: %v", err)
	}
	go func() {
		for range alive {
		}
	}()
	emit(map[string]any{"added": key, "lease": fmt.Sprintf("%016x", int64(lease.ID))})
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		switch strings.TrimSpace(in.Text()) {
		case "delete":
			err = em.DeleteEndpoint(ctx, key)
		case "revoke":
			_, err = cli.Revoke(ctx, lease.ID)
		case "stop":
			stop()
		default:
			err = fmt.Errorf("unknown order %q", in.Text())
		}
		if err != nil {
			fail("%v", err)
		}
		emit(map[string]string{"done": strings.TrimSpace(in.Text())})
	}
	stop()
}

// Command clients runs client-go's own code paths against the cluster $KUBECONFIG names and
// prints what they saw as JSON, so tests judge Canopy by the client library tenants use.
//
//	clients openapi-v2   {"paths": [...], "definitions": [...]} from OpenAPISchema() (protobuf)
//	clients openapi-v3   {"<group-version path>": [schema names]} from OpenAPIV3()
//	clients metadata-informer NAMESPACE RESOURCE
//	                     [names] a metadata informer of core RESOURCE in NAMESPACE holds once synced
//	clients metadata-protobuf NAMESPACE RESOURCE
//	                     {list, watch, informer}: core RESOURCE in NAMESPACE through a metadata
//	                     client that accepts protobuf only
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/metadata/metadatainformer"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"
)

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: clients openapi-v2|openapi-v3|metadata-informer|metadata-protobuf NAMESPACE RESOURCE"))
	}
	config, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fail(err)
	}
	client, err := discovery.NewDiscoveryClientForConfig(config)
	if err != nil {
		fail(err)
	}
	var out any
	switch os.Args[1] {
	case "openapi-v2":
		out, err = openAPIV2(client)
	case "openapi-v3":
		out, err = openAPIV3(client)
	case "metadata-informer":
		if len(os.Args) != 4 {
			fail(fmt.Errorf("usage: clients metadata-informer NAMESPACE RESOURCE"))
		}
		out, err = metadataInformer(config, os.Args[2], os.Args[3])
	case "metadata-protobuf":
		if len(os.Args) != 4 {
			fail(fmt.Errorf("usage: clients metadata-protobuf NAMESPACE RESOURCE"))
		}
		out, err = metadataProtobuf(config, os.Args[2], os.Args[3])
	default:
		err = fmt.Errorf("unknown command %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail(err)
	}
}

func openAPIV2(client *discovery.DiscoveryClient) (any, error) {
	doc, err := client.OpenAPISchema()
	if err != nil {
		return nil, err
	}
	paths, definitions := []string{}, []string{}
	for _, item := range doc.GetPaths().GetPath() {
		paths = append(paths, item.GetName())
	}
	for _, schema := range doc.GetDefinitions().GetAdditionalProperties() {
		definitions = append(definitions, schema.GetName())
	}
	sort.Strings(paths)
	sort.Strings(definitions)
	return map[string][]string{"paths": paths, "definitions": definitions}, nil
}

func openAPIV3(client *discovery.DiscoveryClient) (any, error) {
	groupVersions, err := client.OpenAPIV3().Paths()
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	for path, groupVersion := range groupVersions {
		raw, err := groupVersion.Schema("application/json")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		var doc struct {
			Components struct {
				Schemas map[string]json.RawMessage `json:"schemas"`
			} `json:"components"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		names := []string{}
		for name := range doc.Components.Schemas {
			names = append(names, name)
		}
		sort.Strings(names)
		out[path] = names
	}
	return out, nil
}

// metadataInformer lists and watches core `resource` in `namespace` as metadata alone
// (PartialObjectMetadata), as controllers that need only names and labels do, and returns the
// names its store holds once synced.
func metadataInformer(config *rest.Config, namespace, resource string) (any, error) {
	client, err := metadata.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: resource}
	informer := metadatainformer.NewFilteredMetadataInformer(client, gvr, namespace, 0, cache.Indexers{}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	go informer.Informer().Run(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), informer.Informer().HasSynced) {
		return nil, fmt.Errorf("the metadata informer did not sync")
	}
	names := []string{}
	for _, item := range informer.Informer().GetStore().List() {
		object, ok := item.(*metav1.PartialObjectMetadata)
		if !ok {
			return nil, fmt.Errorf("the store holds a %T", item)
		}
		names = append(names, object.Name)
	}
	sort.Strings(names)
	return names, nil
}

// protobufOnly drops every media range but protobuf's from each request's Accept, as a client
// that reads nothing else would send it.
type protobufOnly struct{ next http.RoundTripper }

func (p protobufOnly) RoundTrip(request *http.Request) (*http.Response, error) {
	kept := []string{}
	for _, accepted := range strings.Split(request.Header.Get("Accept"), ",") {
		if strings.HasPrefix(strings.TrimSpace(accepted), "application/vnd.kubernetes.protobuf") {
			kept = append(kept, accepted)
		}
	}
	request = request.Clone(request.Context())
	request.Header.Set("Accept", strings.Join(kept, ","))
	return p.next.RoundTrip(request)
}

// metadataObject is what metadataProtobuf reports of each object.
type metadataObject struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace"`
	UID       string            `json:"uid"`
	Labels    map[string]string `json:"labels"`
}

// metadataProtobuf reads core `resource` in `namespace` in protobuf only: a list, the initial
// events of a watch, and what a metadata informer holds once synced.
func metadataProtobuf(config *rest.Config, namespace, resource string) (any, error) {
	config = rest.CopyConfig(config)
	config.Wrap(func(next http.RoundTripper) http.RoundTripper { return protobufOnly{next} })
	client, err := metadata.NewForConfig(config)
	if err != nil {
		return nil, err
	}
	gvr := schema.GroupVersionResource{Version: "v1", Resource: resource}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := client.Resource(gvr).Namespace(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list: %w", err)
	}
	listed := []metadataObject{}
	for _, item := range list.Items {
		listed = append(listed, metadataObject{item.Name, item.Namespace, string(item.UID), item.Labels})
	}
	sort.Slice(listed, func(i, j int) bool { return listed[i].Name < listed[j].Name })
	timeout := int64(2)
	watcher, err := client.Resource(gvr).Namespace(namespace).Watch(ctx, metav1.ListOptions{TimeoutSeconds: &timeout})
	if err != nil {
		return nil, fmt.Errorf("watch: %w", err)
	}
	watched := []string{}
	for event := range watcher.ResultChan() {
		object, ok := event.Object.(*metav1.PartialObjectMetadata)
		if !ok {
			return nil, fmt.Errorf("watch event %s holds a %T", event.Type, event.Object)
		}
		watched = append(watched, fmt.Sprintf("%s %s/%s", event.Type, object.Namespace, object.Name))
	}
	sort.Strings(watched)
	informer, err := metadataInformer(config, namespace, resource)
	if err != nil {
		return nil, fmt.Errorf("informer: %w", err)
	}
	return map[string]any{"list": listed, "watch": watched, "informer": informer}, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "clients:", err)
	os.Exit(1)
}

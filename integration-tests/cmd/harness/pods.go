package main

// The node and pod side of the fake kubelet: registers Node fake-node, binds
// unscheduled pods to it (there is no scheduler), marks its pods Running, and
// finishes their deletion at once (there is no container to stop).

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"
)

const nodeName = "fake-node"

// registerNode creates (or updates) fake-node and sets its status through
// the status subresource: the apiserver finds the kubelet through
// status.addresses (InternalIP) and status.daemonEndpoints.kubeletEndpoint.
func registerNode(ctx context.Context, c kubernetes.Interface, kubeletPort int) error {
	labels := map[string]string{
		"kubernetes.io/hostname": nodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
		"node-role.kubernetes.io/fake": "",
	}
	node, err := c.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		node, err = c.CoreV1().Nodes().Create(ctx, &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: labels}}, metav1.CreateOptions{})
	}
	if err != nil {
		return err
	}
	now := metav1.Now()
	res := v1.ResourceList{
		v1.ResourceCPU:              resource.MustParse("8"),
		v1.ResourceMemory:           resource.MustParse("16Gi"),
		v1.ResourcePods:             resource.MustParse("110"),
		v1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
	}
	node.Status = v1.NodeStatus{
		Capacity:    res,
		Allocatable: res,
		Phase:       v1.NodeRunning,
		Addresses: []v1.NodeAddress{
			{Type: v1.NodeInternalIP, Address: "127.0.0.1"},
			{Type: v1.NodeHostName, Address: nodeName},
		},
		DaemonEndpoints: v1.NodeDaemonEndpoints{KubeletEndpoint: v1.DaemonEndpoint{Port: int32(kubeletPort)}},
		Conditions: []v1.NodeCondition{
			{Type: v1.NodeReady, Status: v1.ConditionTrue, Reason: "KubeletReady", Message: "fake kubelet is posting ready status",
				LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: v1.NodeMemoryPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientMemory", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: v1.NodeDiskPressure, Status: v1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", LastHeartbeatTime: now, LastTransitionTime: now},
			{Type: v1.NodePIDPressure, Status: v1.ConditionFalse, Reason: "KubeletHasSufficientPID", LastHeartbeatTime: now, LastTransitionTime: now},
		},
		NodeInfo: v1.NodeSystemInfo{
			KubeletVersion: "v0.0.0-fake", OperatingSystem: "linux", Architecture: "amd64",
			ContainerRuntimeVersion: "fake://0.0.0", OSImage: "canopy harness", KernelVersion: "n/a",
			MachineID: "fake-node", SystemUUID: "fake-node", BootID: "fake-node",
		},
	}
	_, err = c.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
	return err
}

// trackedPod is a pod running on fake-node, as the kubelet endpoints see it.
type trackedPod struct {
	ns, name, uid string
	containers    []string
	gone          chan struct{} // closed when the pod is deleted
}

func (p *trackedPod) hasContainer(c string) bool {
	for _, n := range p.containers {
		if n == c {
			return true
		}
	}
	return false
}

type podTracker struct {
	mu   sync.Mutex
	pods map[string]*trackedPod
}

func (t *podTracker) get(ns, name string) *trackedPod {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.pods[ns+"/"+name]
}

func (t *podTracker) add(pod *v1.Pod) {
	t.mu.Lock()
	defer t.mu.Unlock()
	key := pod.Namespace + "/" + pod.Name
	if old := t.pods[key]; old != nil {
		if old.uid == string(pod.UID) {
			return
		}
		close(old.gone) // same name, new pod
	}
	p := &trackedPod{ns: pod.Namespace, name: pod.Name, uid: string(pod.UID), gone: make(chan struct{})}
	for _, c := range allContainers(pod) {
		p.containers = append(p.containers, c.Name)
	}
	t.pods[key] = p
}

func (t *podTracker) remove(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.pods[key]; p != nil {
		close(p.gone)
		delete(t.pods, key)
	}
}

func allContainers(pod *v1.Pod) []v1.Container {
	cs := append([]v1.Container{}, pod.Spec.InitContainers...)
	return append(cs, pod.Spec.Containers...)
}

// podLoop watches all pods and drives them (see the file comment).
type podLoop struct {
	h       *harness
	client  kubernetes.Interface
	tracker *podTracker
	lister  cache.Indexer
	queue   workqueue.TypedRateLimitingInterface[string]
}

func startPodLoop(ctx context.Context, h *harness, c kubernetes.Interface, t *podTracker) error {
	f := informers.NewSharedInformerFactory(c, 0)
	inf := f.Core().V1().Pods().Informer()
	l := &podLoop{h: h, client: c, tracker: t, lister: inf.GetIndexer(),
		queue: workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())}
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			l.queue.Add(key)
		}
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }, DeleteFunc: enqueue,
	}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		return fmt.Errorf("pod informer did not sync")
	}
	go func() { <-ctx.Done(); l.queue.ShutDown() }()
	for i := 0; i < 2; i++ {
		go wait.UntilWithContext(ctx, l.worker, time.Second)
	}
	return nil
}

func (l *podLoop) worker(ctx context.Context) {
	for {
		key, quit := l.queue.Get()
		if quit {
			return
		}
		if err := l.sync(ctx, key); err != nil && ctx.Err() == nil {
			klog.Infof("harness: pod %s: %v (retrying)", key, err)
			l.queue.AddRateLimited(key)
		} else {
			l.queue.Forget(key)
		}
		l.queue.Done(key)
	}
}

func (l *podLoop) sync(ctx context.Context, key string) error {
	obj, exists, err := l.lister.GetByKey(key)
	if err != nil {
		return err
	}
	if !exists {
		l.tracker.remove(key)
		return nil
	}
	pod := obj.(*v1.Pod)
	pods := l.client.CoreV1().Pods(pod.Namespace)
	switch {
	case pod.Spec.NodeName != "" && pod.Spec.NodeName != nodeName:
		return nil // someone else's
	case pod.DeletionTimestamp != nil:
		// Nothing to stop: finish the graceful deletion now.
		l.tracker.remove(key)
		err := pods.Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: metav1.NewUIDPreconditions(string(pod.UID))})
		if apierrors.IsNotFound(err) || apierrors.IsConflict(err) {
			return nil
		}
		return err
	case pod.Spec.NodeName == "":
		err := pods.Bind(ctx, &v1.Binding{
			ObjectMeta: metav1.ObjectMeta{Name: pod.Name, UID: pod.UID},
			Target:     v1.ObjectReference{Kind: "Node", Name: nodeName},
		}, metav1.CreateOptions{})
		if apierrors.IsConflict(err) || apierrors.IsNotFound(err) { // already bound / gone
			return nil
		}
		return err // the update event brings it back here
	}
	// On fake-node: the containers "start".
	if err := l.startContainers(pod); err != nil {
		return err
	}
	l.tracker.add(pod)
	if pod.Status.Phase == v1.PodRunning || pod.Status.Phase == v1.PodSucceeded || pod.Status.Phase == v1.PodFailed {
		return nil
	}
	_, err = pods.UpdateStatus(ctx, runningStatus(pod), metav1.UpdateOptions{})
	if apierrors.IsConflict(err) || apierrors.IsNotFound(err) {
		return nil // a newer version is queued already
	}
	return err
}

// startContainers creates each container's log file with its first line.
func (l *podLoop) startContainers(pod *v1.Pod) error {
	for _, c := range allContainers(pod) {
		path := l.h.logPath(pod.Namespace, pod.Name, c.Name)
		if exists(path) {
			continue
		}
		if err := os.MkdirAll(l.h.podLogDir(pod.Namespace, pod.Name), 0o755); err != nil {
			return err
		}
		line := fmt.Sprintf("container %s of pod %s/%s started\n", c.Name, pod.Namespace, pod.Name)
		if err := os.WriteFile(path, []byte(line), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func runningStatus(pod *v1.Pod) *v1.Pod {
	pod = pod.DeepCopy()
	now := metav1.Now()
	s := &pod.Status
	s.Phase = v1.PodRunning
	s.HostIP, s.PodIP = "127.0.0.1", "127.0.0.1"
	s.HostIPs, s.PodIPs = []v1.HostIP{{IP: "127.0.0.1"}}, []v1.PodIP{{IP: "127.0.0.1"}}
	s.StartTime = &now
	s.Conditions = nil
	for _, t := range []v1.PodConditionType{v1.PodReadyToStartContainers, v1.PodInitialized, v1.PodReady, v1.ContainersReady, v1.PodScheduled} {
		s.Conditions = append(s.Conditions, v1.PodCondition{Type: t, Status: v1.ConditionTrue, LastTransitionTime: now})
	}
	status := func(c v1.Container, init bool) v1.ContainerStatus {
		cs := v1.ContainerStatus{
			Name: c.Name, Image: c.Image, ImageID: "fake://" + c.Image,
			ContainerID: fmt.Sprintf("fake://%s/%s", pod.UID, c.Name),
			Ready:       !init, Started: new(bool),
		}
		*cs.Started = !init
		if init {
			cs.State.Terminated = &v1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed", StartedAt: now, FinishedAt: now, ContainerID: cs.ContainerID}
		} else {
			cs.State.Running = &v1.ContainerStateRunning{StartedAt: now}
		}
		return cs
	}
	s.InitContainerStatuses, s.ContainerStatuses = nil, nil
	for _, c := range pod.Spec.InitContainers {
		s.InitContainerStatuses = append(s.InitContainerStatuses, status(c, true))
	}
	for _, c := range pod.Spec.Containers {
		s.ContainerStatuses = append(s.ContainerStatuses, status(c, false))
	}
	return pod
}

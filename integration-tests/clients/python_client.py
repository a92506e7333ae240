"""The official Python client through Canopy, as a tenant uses it: it sends POST and PUT bodies
without a Content-Type, so every call here depends on Canopy reading them as the apiserver does
(as JSON). Usage: python_client.py KUBECONFIG NAMESPACE NAME; prints what it saw as JSON."""

import json
import sys

from kubernetes import client, config


def main(kubeconfig, namespace, name):
    api = client.ApiClient(config.new_client_from_config(config_file=kubeconfig).configuration)
    core, apps, rbac = client.CoreV1Api(api), client.AppsV1Api(api), client.RbacAuthorizationV1Api(api)
    seen = {}
    # create_* whose body names its namespace, then replace_*.
    cm = core.create_namespaced_config_map(namespace, {"metadata": {"name": name, "namespace": namespace}, "data": {"a": "1"}})
    cm.data["a"] = "2"
    seen["replaced"] = core.replace_namespaced_config_map(name, namespace, cm).data["a"]
    seen["configmap_namespace"] = cm.metadata.namespace
    # A RoleBinding naming a ServiceAccount of the view by its virtual namespace.
    binding = rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    })
    seen["subject_namespace"] = binding.subjects[0].namespace
    # The scale subresource, replaced.
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}},
                              "spec": {"containers": [{"name": "c", "image": "images.globex.internal/busybox"}]}}},
    })
    # The Deployment controller writes the object meanwhile: a 409 is retried, as clients do.
    for attempt in range(10):
        scale = apps.read_namespaced_deployment_scale(name, namespace)
        scale.spec.replicas = 2
        try:
            seen["scaled"] = apps.replace_namespaced_deployment_scale(name, namespace, scale).spec.replicas
            break
        except client.exceptions.ApiException as error:
            if error.status != 409 or attempt == 9:
                raise
    apps.delete_namespaced_deployment(name, namespace)
    rbac.delete_namespaced_role_binding(name, namespace)
    core.delete_namespaced_config_map(name, namespace)
    print(json.dumps(seen))


if __name__ == "__main__":
    main(*sys.argv[1:4])

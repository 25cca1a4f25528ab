//! The Kubernetes manifests (deploy/kubernetes): every overlay rendered offline with `kubectl
//! kustomize` and each manifest checked against the Kubernetes 1.32 schemas, custom resources
//! against their CRDs (scripts/validate_kubernetes.py); then what HBI needs of them: the image
//! config/Dockerfile builds, its non-root user, read-only containers, the health probes on
//! the ports the processes bind, a worker's grace longer than its own, disruption budgets,
//! autoscalers (the API's on CPU, the workers' on hbi_queue_depth), network policies that
//! cover every pod, settings apart from secrets.

use crate::common;
use crate::ops;

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

fn rendered_overlays() -> BTreeMap<String, Vec<Value>> {
    let output = Command::new("python3")
        .arg(ops::repo_root().join("scripts/validate_kubernetes.py"))
        .arg("1.32.0")
        .env("PYTHONPATH", common::python_tools_path())
        .output()
        .expect("python3 runs scripts/validate_kubernetes.py");
    assert!(
        output.status.success(),
        "the manifests do not validate (kubectl and kubernetes-validate: scripts/test installs the latter):\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("the rendered overlays as JSON")
}

fn find<'a>(manifests: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    manifests
        .iter()
        .find(|manifest| manifest["kind"] == kind && manifest["metadata"]["name"] == name)
}

/// The user config/Dockerfile's image runs as, and the name it is built as (by
/// docker-compose.prod.yml, the repository's build of it).
fn image_of_the_dockerfile() -> (String, u64) {
    let dockerfile = std::fs::read_to_string(ops::repo_root().join("config/Dockerfile")).expect("config/Dockerfile");
    let user = dockerfile
        .lines()
        .filter_map(|line| line.strip_prefix("USER "))
        .next_back()
        .and_then(|user| user.split(':').next()?.trim().parse().ok())
        .expect("the image's last USER is a numeric uid");
    for program in ["poppler-utils", "djvulibre-bin", "tesseract-ocr"] {
        assert!(
            dockerfile.contains(program),
            "the image has {program}, which the extractor runs"
        );
    }
    let compose = ops::yaml(&ops::repo_root().join("docker-compose.prod.yml"));
    let built = &compose["x-hbi"];
    assert_eq!(built["build"]["dockerfile"], "config/Dockerfile");
    let name = built["image"]
        .as_str()
        .expect("image")
        .split(':')
        .next()
        .unwrap_or_default();
    (name.to_owned(), user)
}

#[test]
fn the_kubernetes_manifests_render_validate_and_run_hbi_as_it_needs() {
    let overlays = rendered_overlays();
    assert!(
        overlays.contains_key("example") && overlays.contains_key("production"),
        "{:?}",
        overlays.keys()
    );
    let (image, uid) = image_of_the_dockerfile();
    for (overlay, manifests) in &overlays {
        let settings = manifests
            .iter()
            .find(|manifest| manifest["kind"] == "ConfigMap")
            .unwrap_or_else(|| panic!("{overlay}: the settings"));
        for key in settings["data"].as_object().expect("data").keys() {
            let upper = key.to_uppercase();
            assert!(
                !["PASSWORD", "SECRET", "KEY", "DATABASE_URL"]
                    .iter()
                    .any(|word| upper.contains(word)),
                "{overlay}: {key} belongs in the Secret, not the ConfigMap"
            );
        }
        let grace: f64 = settings["data"]["HBI__WORKER__SHUTDOWN_GRACE_SECS"]
            .as_str()
            .and_then(|grace| grace.parse().ok())
            .expect("the worker's shutdown grace is set");

        for (name, port, command) in [("hbi-api", 8000, "api"), ("hbi-worker", 8001, "worker")] {
            let deployment = find(manifests, "Deployment", name).unwrap_or_else(|| panic!("{overlay}: {name}"));
            let pod = &deployment["spec"]["template"];
            assert_eq!(
                pod["metadata"]["labels"]["app.kubernetes.io/part-of"], "hbi",
                "{overlay}: {name}"
            );
            let spec = &pod["spec"];
            assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{overlay}: {name}");
            assert_eq!(
                spec["securityContext"]["runAsUser"], uid,
                "{overlay}: {name} runs as the image's user"
            );
            assert_eq!(spec["automountServiceAccountToken"], false, "{overlay}: {name}");
            let [container] = spec["containers"].as_array().expect("containers").as_slice() else {
                panic!("{overlay}: {name} has one container");
            };
            let named = container["image"].as_str().expect("image");
            let base = named
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .split(':')
                .next()
                .unwrap_or_default();
            assert_eq!(base, image, "{overlay}: {name} runs the image config/Dockerfile builds");
            assert_eq!(container["args"][0], command);
            assert_eq!(
                container["args"][2],
                format!("0.0.0.0:{port}"),
                "{overlay}: {name} binds its port"
            );
            assert_eq!(container["ports"][0]["containerPort"], port);
            let context = &container["securityContext"];
            assert_eq!(context["readOnlyRootFilesystem"], true, "{overlay}: {name}");
            assert_eq!(context["allowPrivilegeEscalation"], false, "{overlay}: {name}");
            assert_eq!(
                context["capabilities"]["drop"],
                serde_json::json!(["ALL"]),
                "{overlay}: {name}"
            );
            let port_name = &container["ports"][0]["name"];
            for (probe, path) in [("readinessProbe", "/health/ready"), ("livenessProbe", "/health/live")] {
                assert_eq!(container[probe]["httpGet"]["path"], path, "{overlay}: {name} {probe}");
                assert_eq!(
                    &container[probe]["httpGet"]["port"], port_name,
                    "{overlay}: {name} {probe}"
                );
            }
            let mounts: Vec<&str> = container["volumeMounts"]
                .as_array()
                .expect("mounts")
                .iter()
                .filter_map(|mount| mount["mountPath"].as_str())
                .collect();
            assert!(
                mounts.contains(&"/tmp") && mounts.contains(&"/var/lib/hbi/data"),
                "{overlay}: {name} has writable scratch space beside its read-only root: {mounts:?}"
            );
            let secret = container["envFrom"]
                .as_array()
                .expect("envFrom")
                .iter()
                .find_map(|source| source["secretRef"]["name"].as_str())
                .expect("settings from a Secret");
            if overlay == "example" {
                assert!(
                    find(manifests, "Secret", secret).is_some(),
                    "{overlay}: the Secret {secret} is made"
                );
            }
            let budget = find(manifests, "PodDisruptionBudget", name).unwrap_or_else(|| panic!("{overlay}: {name}"));
            assert_eq!(
                budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"],
                name
            );
            if name == "hbi-worker" {
                let kill_after = spec["terminationGracePeriodSeconds"].as_f64().expect("grace");
                assert!(
                    kill_after > grace + 10.0,
                    "{overlay}: a worker is killed after {kill_after} s, its own grace is {grace} s"
                );
            }
        }

        let api_autoscaler = find(manifests, "HorizontalPodAutoscaler", "hbi-api").expect("the API's autoscaler");
        assert_eq!(api_autoscaler["spec"]["metrics"][0]["resource"]["name"], "cpu");
        let on_queue = match (
            find(manifests, "HorizontalPodAutoscaler", "hbi-worker"),
            find(manifests, "ScaledObject", "hbi-worker"),
        ) {
            (Some(hpa), None) => hpa["spec"]["metrics"][0]["external"]["metric"]["name"] == "hbi_queue_depth",
            (None, Some(keda)) => keda["spec"]["triggers"][0]["metadata"]["query"]
                .as_str()
                .is_some_and(|query| query.contains("hbi_queue_depth")),
            other => panic!("{overlay}: one autoscaler for the workers, not {other:?}"),
        };
        assert!(on_queue, "{overlay}: the workers scale on hbi_queue_depth");

        let deny = find(manifests, "NetworkPolicy", "hbi-default-deny").expect("a default-deny policy");
        assert_eq!(
            deny["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/part-of"],
            "hbi"
        );
        assert_eq!(deny["spec"]["policyTypes"], serde_json::json!(["Ingress", "Egress"]));
        let policies = manifests
            .iter()
            .filter(|manifest| manifest["kind"] == "NetworkPolicy")
            .count();
        assert!(policies >= 4, "{overlay}: {policies} network policies");
    }
}

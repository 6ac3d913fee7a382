#!/usr/bin/env python3
"""Assertions over the manifests `helm template` renders for one values case.

    assert_rendered.py CASE MANIFESTS.yaml [--notes NOTES.txt] [--release NAME]
    assert_rendered.py --docs CHART_DIR

CASE is one of: default, minimal-dev, production, production-no-crd,
tls-everywhere, scale-out. Prints one line per check and, last, a line
`assertions: N passed, M failed`; exits 1 when any check failed.

--docs checks the chart's documentation instead: every value of values.yaml
is listed in README.md and described by values.schema.json, and the schema
has no value that values.yaml lacks.
"""

import argparse
import json
import re
import sys

import yaml

PASSED = 0
FAILED = 0


def check(ok, what, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print(f"  ok    {what}")
    else:
        FAILED += 1
        print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))
    return ok


def seconds(duration):
    """'20s', '2m', '500ms', '1m30s' -> seconds (float)."""
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d)", duration):
        total += int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}[unit]
    return total


class Manifests:
    def __init__(self, path):
        with open(path) as f:
            self.docs = [d for d in yaml.safe_load_all(f) if d]

    def all(self, kind):
        return [d for d in self.docs if d.get("kind") == kind]

    def one(self, kind, name_suffix):
        found = [d for d in self.all(kind) if d["metadata"]["name"].endswith(name_suffix)]
        return found[0] if len(found) == 1 else None


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def container(workload, name):
    for c in pod_spec(workload)["containers"]:
        if c["name"] == name:
            return c
    return None


def env_of(workload, cont, configmaps):
    """The container's environment: its ConfigMap (envFrom) overlaid by env."""
    env = {}
    for source in cont.get("envFrom", []):
        ref = source.get("configMapRef")
        if ref:
            cm = configmaps.get(ref["name"])
            if cm is not None:
                env.update(cm.get("data", {}))
    for entry in cont.get("env", []):
        env[entry["name"]] = entry.get("value", entry.get("valueFrom"))
    return env


def secret_refs(workload):
    """Names of every Secret a pod reads (volumes and env secretKeyRefs)."""
    names = set()
    spec = pod_spec(workload)
    for vol in spec.get("volumes", []):
        if "secret" in vol:
            names.add(vol["secret"]["secretName"])
    for cont in spec["containers"]:
        for entry in cont.get("env", []):
            ref = (entry.get("valueFrom") or {}).get("secretKeyRef")
            if ref:
                names.add(ref["name"])
        for source in cont.get("envFrom", []):
            if "secretRef" in source:
                names.add(source["secretRef"]["name"])
    return names


def secret_file(workload, cont, path):
    """(Secret name, key) of the file at `path` in the container, when a
    Secret volume mounted there holds it as an item; else None."""
    volumes = {v["name"]: v for v in pod_spec(workload).get("volumes", [])}
    for mount in cont.get("volumeMounts", []):
        prefix = mount["mountPath"].rstrip("/") + "/"
        secret = volumes.get(mount["name"], {}).get("secret")
        if not path.startswith(prefix) or secret is None:
            continue
        for item in secret.get("items", []):
            if prefix + item["path"] == path:
                return secret["secretName"], item["key"]
    return None


def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


# Cases rendering several core replicas (on ScyllaDB).
SCALE_OUT_CASES = {"scale-out"}


# --- checks every case shares ------------------------------------------------


def common_checks(m, case, release):
    configmaps = {cm["metadata"]["name"]: cm for cm in m.all("ConfigMap")}
    bridge = m.one("Deployment", "-bridge")
    core = m.one("Deployment", "-core")
    if not check(bridge is not None and core is not None, "one bridge and one core Deployment"):
        return None
    bc = container(bridge, "bridge")
    cc = container(core, "core")
    check(bc is not None and cc is not None, "containers named bridge and core")
    benv = env_of(bridge, bc, configmaps)
    cenv = env_of(core, cc, configmaps)

    # The single core (scale-out checks its replicas in its own case).
    if case not in SCALE_OUT_CASES:
        check(core["spec"].get("replicas") == 1, "core replicas == 1", core["spec"].get("replicas"))
        check(core["spec"].get("strategy", {}).get("type") == "Recreate", "core strategy Recreate",
              core["spec"].get("strategy"))
        check(m.one("Service", "-core-peers") is None, "one core: no headless peers Service")
        check(not any(k in cenv for k in ("MENO_PEERS", "MENO_PEERS_DNS", "MENO_REPLICA_ID", "MENO_ADVERTISE_URL",
                                          "MENO_OWNERSHIP_TTL")),
              "one core: no membership or ownership settings")
        check(not pod_spec(core).get("topologySpreadConstraints"), "one core: no topology spread")
    check(bc["command"] == ["/usr/local/bin/meno-bridge"] and cc["command"] == ["/usr/local/bin/meno-core"],
          "containers run meno-bridge and meno-core")
    check(bc["image"] == cc["image"], "one image for both binaries")

    # Listen addresses and the bridge's way to the core.
    check(benv.get("MENO_LISTEN") == "0.0.0.0:8080", "bridge listens on 0.0.0.0:8080", benv.get("MENO_LISTEN"))
    check(cenv.get("MENO_LISTEN") == "0.0.0.0:50051", "core gRPC listens on 0.0.0.0:50051", cenv.get("MENO_LISTEN"))
    check(cenv.get("MENO_METRICS_LISTEN") == "0.0.0.0:9090", "core metrics on 0.0.0.0:9090")
    core_svc = m.one("Service", "-core")
    bridge_svc = m.one("Service", "-bridge")
    check(core_svc is not None and bridge_svc is not None, "a Service for each")
    if core_svc:
        ns = core_svc["metadata"]["namespace"]
        want = re.compile(rf"^https?://{re.escape(core_svc['metadata']['name'])}\.{re.escape(ns)}\.svc:50051$")
        check(bool(want.match(benv.get("MENO_CORE", ""))), "bridge --core is the core Service", benv.get("MENO_CORE"))
        check(labels_match(core_svc["spec"]["selector"], core["spec"]["template"]["metadata"]["labels"]),
              "core Service selects the core pod")
        ports = {p["name"]: p for p in core_svc["spec"]["ports"]}
        check(ports.get("grpc", {}).get("port") == 50051 and ports.get("metrics", {}).get("port") == 9090,
              "core Service ports grpc 50051 and metrics 9090")
        check(not labels_match(core_svc["spec"]["selector"], bridge["spec"]["template"]["metadata"]["labels"]),
              "core Service does not select bridges")
        # One core: reachable even while NOT_SERVING (nothing to fail over to);
        # several: only ready replicas, since another one can answer.
        want_not_ready = case not in SCALE_OUT_CASES
        check(core_svc["spec"].get("publishNotReadyAddresses") is want_not_ready,
              f"core Service publishNotReadyAddresses {want_not_ready}", core_svc["spec"].get("publishNotReadyAddresses"))
    if bridge_svc:
        check(labels_match(bridge_svc["spec"]["selector"], bridge["spec"]["template"]["metadata"]["labels"]),
              "bridge Service selects the bridge pods")

    # Probes.
    def http_probe(probe, path):
        return bool(probe) and probe.get("httpGet", {}).get("path") == path

    check(http_probe(bc.get("livenessProbe"), "/healthz"), "bridge liveness probe GET /healthz")
    check(http_probe(bc.get("readinessProbe"), "/readyz"), "bridge readiness probe GET /readyz")
    check(http_probe(bc.get("startupProbe"), "/healthz"), "bridge startup probe GET /healthz")
    check("tcpSocket" in (cc.get("livenessProbe") or {}), "core liveness probe: TCP (not gRPC health)")
    check(bool(cc.get("startupProbe")), "core startup probe")
    readiness = cc.get("readinessProbe") or {}
    if benv.get("MENO_CORE", "").startswith("https://"):
        check("tcpSocket" in readiness, "core readiness: TCP when its gRPC port speaks TLS")
    else:
        check(readiness.get("grpc", {}).get("port") == 50051, "core readiness: native gRPC health probe on 50051",
              readiness)

    # Graceful shutdown.
    drain_b = seconds(benv.get("MENO_DRAIN_TIMEOUT", "0s"))
    drain_c = seconds(cenv.get("MENO_DRAIN_TIMEOUT", "0s"))
    check(drain_b > 0 and drain_c > 0, "both drain timeouts set")
    pre_stop = (bc.get("lifecycle") or {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    grace_b = pod_spec(bridge).get("terminationGracePeriodSeconds", 30)
    grace_c = pod_spec(core).get("terminationGracePeriodSeconds", 30)
    check(grace_b > pre_stop + drain_b, f"bridge grace {grace_b}s > preStop {pre_stop}s + drain {drain_b:g}s")
    check(grace_c > drain_c, f"core grace {grace_c}s > drain {drain_c:g}s")
    if case != "minimal-dev":
        check(pre_stop > 0, "bridge preStop sleep before SIGTERM", bc.get("lifecycle"))

    # Security contexts.
    for workload, cont, who in ((bridge, bc, "bridge"), (core, cc, "core")):
        psc = pod_spec(workload).get("securityContext", {})
        csc = cont.get("securityContext", {})
        check(psc.get("runAsNonRoot") is True and csc.get("runAsNonRoot") is True, f"{who}: runAsNonRoot")
        check(isinstance(csc.get("runAsUser"), int) and csc["runAsUser"] != 0, f"{who}: numeric non-root user")
        check(csc.get("readOnlyRootFilesystem") is True, f"{who}: readOnlyRootFilesystem")
        check(csc.get("allowPrivilegeEscalation") is False, f"{who}: no privilege escalation")
        check(csc.get("capabilities", {}).get("drop") == ["ALL"], f"{who}: drops ALL capabilities")
        check(psc.get("seccompProfile", {}).get("type") == "RuntimeDefault", f"{who}: seccomp RuntimeDefault")
        check(pod_spec(workload).get("automountServiceAccountToken") is False, f"{who}: no API token mounted")
        check(bool(cont.get("resources", {}).get("requests")), f"{who}: resource requests")

    # Every file a setting names is on a mounted volume, and every mount has a volume.
    for workload, cont, env, who in ((bridge, bc, benv, "bridge"), (core, cc, cenv, "core")):
        volumes = {v["name"] for v in pod_spec(workload).get("volumes", [])}
        mounts = cont.get("volumeMounts", [])
        check(all(mt["name"] in volumes for mt in mounts), f"{who}: every volumeMount has a volume")
        for name, value in env.items():
            if isinstance(value, str) and value.startswith("/etc/meno/"):
                under = [mt for mt in mounts if value.startswith(mt["mountPath"].rstrip("/") + "/")]
                check(bool(under), f"{who}: {name}={value} is on a mounted volume")
        check(any(mt["mountPath"] == "/tmp" for mt in mounts), f"{who}: writable /tmp (emptyDir)")

    # Secrets: referenced by name, never rendered, never in a ConfigMap.
    check(not m.all("Secret"), "the chart renders no Secret")
    for cm in m.all("ConfigMap"):
        for key, value in (cm.get("data") or {}).items():
            if re.search(r"PASSWORD|TOKEN|SECRET|_KEY$|_FILE$", key):
                check(str(value).startswith("/etc/meno/"),
                      f"ConfigMap {cm['metadata']['name']}: {key} is a mounted file's path, not a secret", value)

    # NetworkPolicy: only bridges and listed peers reach core gRPC.
    policies = m.all("NetworkPolicy")
    if check(len(policies) == 1, "one NetworkPolicy"):
        np = policies[0]
        core_labels = core["spec"]["template"]["metadata"]["labels"]
        bridge_labels = bridge["spec"]["template"]["metadata"]["labels"]
        check(labels_match(np["spec"]["podSelector"]["matchLabels"], core_labels), "NetworkPolicy selects the core")
        check(not labels_match(np["spec"]["podSelector"]["matchLabels"], bridge_labels),
              "NetworkPolicy does not select the bridges")
        check("Ingress" in np["spec"]["policyTypes"], "NetworkPolicy restricts ingress")
        grpc_rules = [r for r in np["spec"]["ingress"] if any(p.get("port") == 50051 for p in r.get("ports", []))]
        check(bool(grpc_rules) and all(r.get("from") for r in grpc_rules),
              "every rule opening gRPC names its sources")
        check(any(any("podSelector" in peer and "namespaceSelector" not in peer
                      and labels_match(peer["podSelector"].get("matchLabels", {}), bridge_labels)
                      for peer in r["from"]) for r in grpc_rules),
              "bridges may reach core gRPC")
        open_ports = [p.get("port") for r in np["spec"]["ingress"] if not r.get("from") for p in r.get("ports", [])]
        check(50051 not in open_ports and not any(not r.get("ports") for r in np["spec"]["ingress"]),
              "no rule opens gRPC (or every port) to everyone")
        check(any(p.get("port") == 9090 for r in np["spec"]["ingress"] for p in r.get("ports", [])),
              "metrics port reachable for scrapers")

    # PodDisruptionBudgets select what they should.
    for pdb in m.all("PodDisruptionBudget"):
        target = bridge if pdb["metadata"]["name"].endswith("-bridge") else core
        check(labels_match(pdb["spec"]["selector"]["matchLabels"], target["spec"]["template"]["metadata"]["labels"]),
              f"PDB {pdb['metadata']['name']} selects its pods")

    return dict(bridge=bridge, core=core, bc=bc, cc=cc, benv=benv, cenv=cenv, configmaps=configmaps)


# --- per case -------------------------------------------------------------


def check_migration_job(m, ctx, expect):
    jobs = m.all("Job")
    if not expect:
        check(not jobs, "no migration Job (no CQL store)")
        return
    if not check(len(jobs) == 1, "one migration Job"):
        return
    job = jobs[0]
    ann = job["metadata"].get("annotations", {})
    check(ann.get("helm.sh/hook") == "pre-install,pre-upgrade", "Job is a pre-install,pre-upgrade hook",
          ann.get("helm.sh/hook"))
    check("before-hook-creation" in ann.get("helm.sh/hook-delete-policy", ""), "hook delete policy replaces old Jobs")
    jc = pod_spec(job)["containers"][0]
    check(jc["command"] == ["/usr/local/bin/meno-core", "migrate"], "Job runs `meno-core migrate`", jc["command"])
    check(jc["image"] == ctx["cc"]["image"], "Job uses the core's image")
    check(pod_spec(job)["restartPolicy"] == "Never", "Job restartPolicy Never")
    check(not jc.get("envFrom"), "Job carries its settings inline (hooks run before the ConfigMaps exist)")
    jenv = env_of(job, jc, {})
    same = [k for k in ctx["cenv"] if k.startswith("MENO_SCYLLA_") or k == "MENO_STORE"]
    diff = [k for k in same if jenv.get(k) != ctx["cenv"][k]]
    check(same and not diff, "Job and core agree on every MENO_SCYLLA_* setting", diff)
    csc = jc.get("securityContext", {})
    check(csc.get("readOnlyRootFilesystem") is True and csc.get("runAsNonRoot") is True,
          "Job: non-root, read-only root filesystem")
    volumes = {v["name"] for v in pod_spec(job).get("volumes", [])}
    for name, value in jenv.items():
        if isinstance(value, str) and value.startswith("/etc/meno/"):
            check(any(value.startswith(mt["mountPath"] + "/") and mt["name"] in volumes
                      for mt in jc.get("volumeMounts", [])), f"Job: {name} is on a mounted volume")


def check_notes(notes_path, url, expect=(), absent=()):
    if not notes_path:
        return
    with open(notes_path) as f:
        rendered = [d for d in yaml.safe_load_all(f) if d]
    notes = rendered[0]["data"]["notes"] if rendered else ""
    check(f"WebSocket URL:\n\n  {url}\n" in notes, f"NOTES: WebSocket URL {url}")
    for text in expect:
        check(text in notes, f"NOTES says: {text}")
    for text in absent:
        check(text not in notes, f"NOTES does not say: {text}")
    check(f"NEXT_PUBLIC_REALTIME_WEBSOCKET_URL={url}" in notes, f"NOTES: NEXT_PUBLIC_REALTIME_WEBSOCKET_URL={url}")
    check(f"REALTIME_WEBSOCKET_URL={url}" in notes, "NOTES: REALTIME_WEBSOCKET_URL")
    check(f'"realtimeWsUrl": "{url}"' in notes, "NOTES: app.json extra.realtimeWsUrl")


def case_default(m, ctx, release, notes):
    benv, cenv = ctx["benv"], ctx["cenv"]
    full = f"{release}-meno-realtime"
    check(benv.get("MENO_AUTH") == "jwt", "default auth is jwt")
    check(benv.get("MENO_JWT_HS256_SECRET_FILE") == "/etc/meno/jwt/hs256-secret", "HS256 key read from a file")
    check(cenv.get("MENO_STORE") == "embedded" and cenv.get("MENO_DATA_DIR") == "/var/lib/meno",
          "embedded store in /var/lib/meno")
    pvcs = m.all("PersistentVolumeClaim")
    check(len(pvcs) == 1, "a PersistentVolumeClaim for the embedded store")
    vols = {v["name"]: v for v in pod_spec(ctx["core"])["volumes"]}
    check(vols.get("data", {}).get("persistentVolumeClaim", {}).get("claimName") == (pvcs[0]["metadata"]["name"] if pvcs else None),
          "core mounts the claim")
    check(secret_refs(ctx["bridge"]) == {f"{full}-jwt", f"{full}-grpc-token"},
          "bridge reads Secrets <fullname>-jwt and <fullname>-grpc-token", secret_refs(ctx["bridge"]))
    check(secret_refs(ctx["core"]) == {f"{full}-grpc-token"}, "core reads Secret <fullname>-grpc-token",
          secret_refs(ctx["core"]))
    check(cenv.get("MENO_GRPC_TOKEN_FILE") == benv.get("MENO_GRPC_TOKEN_FILE") == "/etc/meno/grpc-token/token",
          "both ends of gRPC use the token file")
    check(ctx["bridge"]["spec"].get("replicas") == 2, "two bridges by default")
    check(len(pod_spec(ctx["bridge"]).get("topologySpreadConstraints", [])) == 2, "bridges spread over zones and nodes")
    check(not m.all("HorizontalPodAutoscaler") and not m.all("Ingress") and not m.all("ServiceMonitor"),
          "no HPA, Ingress or ServiceMonitor by default")
    check(len(m.all("PodDisruptionBudget")) == 2, "PodDisruptionBudgets for bridge and core")
    check_migration_job(m, ctx, expect=False)
    check_notes(notes, "ws://127.0.0.1:8080/ws",
                expect=[f"create secret generic {full}-jwt --from-file=hs256-secret=",
                        f"create secret generic {full}-grpc-token --from-literal=token=",
                        f"port-forward svc/{full}-bridge 8080:80"],
                absent=["WARNING"])


def case_minimal_dev(m, ctx, release, notes):
    benv, cenv = ctx["benv"], ctx["cenv"]
    check(benv.get("MENO_AUTH") == "none", "auth none")
    check(not any(k.startswith("MENO_JWT_") for k in benv), "no JWT settings")
    check("MENO_GRPC_TOKEN_FILE" not in benv and "MENO_GRPC_TOKEN_FILE" not in cenv, "no gRPC token")
    check(not secret_refs(ctx["bridge"]) and not secret_refs(ctx["core"]), "no Secret needed")
    check(ctx["bridge"]["spec"].get("replicas") == 1, "one bridge")
    check(cenv.get("MENO_STORE") == "embedded", "embedded store")
    vols = {v["name"]: v for v in pod_spec(ctx["core"])["volumes"]}
    check("emptyDir" in vols.get("data", {}), "embedded store on an emptyDir")
    check(not m.all("PersistentVolumeClaim"), "no PersistentVolumeClaim")
    check_migration_job(m, ctx, expect=False)
    check_notes(notes, "ws://127.0.0.1:8080/ws",
                expect=['auth.mode is "none"', "emptyDir"], absent=["create secret"])


def case_production(m, ctx, release, notes, crd=True):
    benv, cenv = ctx["benv"], ctx["cenv"]
    check(ctx["bridge"]["metadata"]["name"] == "meno-realtime-bridge", "seed 002 ServiceName prefixes the names")
    # Seed 002's parameters.
    check(benv.get("MENO_WS_PATH") == "/prod", "seed 002 StageName -> --ws-path /prod")
    check(benv.get("MENO_CORE_TIMEOUT") == "10s", "seed 002 LambdaTimeout -> --core-timeout 10s")
    tables = {k: cenv.get(k) for k in ("MENO_SCYLLA_TABLE_CHAT", "MENO_SCYLLA_TABLE_PRESENCE",
                                        "MENO_SCYLLA_TABLE_SESSIONS", "MENO_SCYLLA_TABLE_CONNECTIONS")}
    check(tables == {"MENO_SCYLLA_TABLE_CHAT": "meno_chat", "MENO_SCYLLA_TABLE_PRESENCE": "meno_presence",
                     "MENO_SCYLLA_TABLE_SESSIONS": "meno_session", "MENO_SCYLLA_TABLE_CONNECTIONS": "meno_connections"},
          "seed 002 table names -> --scylla-table-*", tables)
    # ScyllaDB.
    check(cenv.get("MENO_STORE") == "scylla", "store scylla")
    check(len(cenv.get("MENO_SCYLLA_NODES", "").split(",")) == 3, "three contact points")
    check(cenv.get("MENO_SCYLLA_KEYSPACE") == "meno_realtime", "keyspace")
    check(cenv.get("MENO_SCYLLA_CONSISTENCY") == "local-quorum", "consistency local-quorum")
    check(cenv.get("MENO_SCYLLA_TLS_CA") == "/etc/meno/scylla-ca/ca.crt", "Scylla TLS CA file")
    check(cenv.get("MENO_SCYLLA_PASSWORD_FILE") == "/etc/meno/scylla-credentials/password", "Scylla password file")
    user = cenv.get("MENO_SCYLLA_USER")
    check(isinstance(user, dict) and user.get("secretKeyRef", {}).get("name") == "scylla-credentials",
          "Scylla user from Secret scylla-credentials", user)
    check(cenv.get("MENO_REPLICATION_STRATEGY") == "network-topology" and cenv.get("MENO_REPLICATION_FACTOR") == "3",
          "replication network-topology, factor 3")
    check(not m.all("PersistentVolumeClaim"), "no PersistentVolumeClaim with ScyllaDB")
    check(not any(v["name"] == "data" for v in pod_spec(ctx["core"])["volumes"]), "no data volume with ScyllaDB")
    check(secret_refs(ctx["core"]) == {"scylla-credentials", "scylla-ca", "meno-realtime-grpc-token"},
          "core reads exactly the named Secrets", secret_refs(ctx["core"]))
    # JWT from a JWKS URL: no key Secret.
    check(benv.get("MENO_AUTH") == "jwt" and benv.get("MENO_JWT_JWKS_URL", "").startswith("https://"),
          "JWT keys from a JWKS URL")
    check(benv.get("MENO_JWT_ISSUER") and benv.get("MENO_JWT_AUDIENCE") == "meno-web", "issuer and audience")
    check(secret_refs(ctx["bridge"]) == {"meno-realtime-grpc-token", "coturn-auth"},
          "bridge reads only the gRPC token and TURN Secrets", secret_refs(ctx["bridge"]))
    # WebRTC: ICE servers and the TURN secret file.
    check(benv.get("MENO_ICE_SERVERS") == "stun:turn.example.com:3478,turn:turn.example.com:3478?transport=udp,"
          "turns:turn.example.com:5349", "ICE servers -> --ice-servers", benv.get("MENO_ICE_SERVERS"))
    check(benv.get("MENO_TURN_SECRET_FILE") == "/etc/meno/turn/secret", "TURN secret file -> --turn-secret-file",
          benv.get("MENO_TURN_SECRET_FILE"))
    turn_file = secret_file(ctx["bridge"], ctx["bc"], benv.get("MENO_TURN_SECRET_FILE") or "")
    check(turn_file == ("coturn-auth", "static-auth-secret"),
          "TURN secret file is key static-auth-secret of Secret coturn-auth", turn_file)
    turn_mount = [mt for mt in ctx["bc"].get("volumeMounts", []) if mt["name"] == "turn-secret"]
    check(len(turn_mount) == 1 and turn_mount[0].get("readOnly") is True,
          "bridge mounts the turn-secret volume read-only", turn_mount)
    check(benv.get("MENO_TURN_CREDENTIAL_TTL") == "12h", "TURN credential TTL")
    # HPA.
    hpas = m.all("HorizontalPodAutoscaler")
    if check(len(hpas) == 1, "an HPA for the bridges"):
        hpa = hpas[0]
        check(hpa["spec"]["scaleTargetRef"]["name"] == ctx["bridge"]["metadata"]["name"], "HPA targets the bridges")
        check(hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu", "HPA on CPU")
    check("replicas" not in ctx["bridge"]["spec"], "bridge replicas left to the HPA")
    check(not any(h["spec"]["scaleTargetRef"]["name"] == ctx["core"]["metadata"]["name"] for h in hpas),
          "the core is never autoscaled")
    # Ingress for wss.
    ings = m.all("Ingress")
    if check(len(ings) == 1, "an Ingress"):
        ing = ings[0]
        ann = ing["metadata"].get("annotations", {})
        check(ann.get("nginx.ingress.kubernetes.io/proxy-read-timeout") == "3600"
              and ann.get("nginx.ingress.kubernetes.io/proxy-send-timeout") == "3600",
              "nginx proxy read/send timeouts 3600 s")
        rule = ing["spec"]["rules"][0]
        path = rule["http"]["paths"][0]
        check(rule.get("host") == "realtime.example.com" and path["path"] == "/prod", "Ingress routes host/prod")
        check(path["backend"]["service"]["name"] == ctx["bridge"]["metadata"]["name"], "Ingress backend: bridges")
        check(ing["spec"].get("tls", [{}])[0].get("secretName") == "realtime-example-com-tls", "Ingress TLS")
    # ServiceMonitor only where the API exists.
    sms = m.all("ServiceMonitor")
    if crd:
        check(len(sms) == 2, "ServiceMonitors for bridge and core")
        for sm in sms:
            ep = sm["spec"]["endpoints"][0]
            check(ep["path"] == "/metrics" and ep["port"] in ("http", "metrics"), f"{sm['metadata']['name']} scrapes /metrics")
    else:
        check(not sms, "no ServiceMonitor without the monitoring.coreos.com/v1 API")
    # Backends listed in the NetworkPolicy.
    np = m.all("NetworkPolicy")[0]
    grpc_from = [peer for r in np["spec"]["ingress"] if any(p.get("port") == 50051 for p in r.get("ports", []))
                 for peer in r["from"]]
    check(len(grpc_from) == 2, "NetworkPolicy: bridges plus the listed backend", grpc_from)
    check_migration_job(m, ctx, expect=True)
    check_notes(notes, "wss://realtime.example.com/prod",
                expect=["create secret generic meno-realtime-grpc-token",
                        "create secret generic scylla-credentials --from-literal=username=USER",
                        "create secret generic scylla-ca --from-file=ca.crt=./ca.crt"],
                absent=["WARNING", "port-forward"])


def case_tls_everywhere(m, ctx, release, notes):
    benv, cenv, bc = ctx["benv"], ctx["cenv"], ctx["bc"]
    full = f"{release}-meno-realtime"
    check(benv.get("MENO_TLS_CERT") == "/etc/meno/tls/tls.crt" and benv.get("MENO_TLS_KEY") == "/etc/meno/tls/tls.key",
          "bridge serves wss")
    check(all(bc[p]["httpGet"]["scheme"] == "HTTPS" for p in ("livenessProbe", "readinessProbe", "startupProbe")),
          "bridge probes over HTTPS")
    check(benv.get("MENO_CORE", "").startswith("https://") and benv.get("MENO_CORE_TLS_CA"),
          "bridge dials the core over TLS with its CA")
    check(cenv.get("MENO_TLS_CERT") and cenv.get("MENO_TLS_KEY"), "core gRPC over TLS")
    ing = m.all("Ingress")[0]
    check(ing["metadata"]["annotations"].get("nginx.ingress.kubernetes.io/backend-protocol") == "HTTPS",
          "Ingress re-encrypts to the bridges")
    vols = {v["name"]: v for v in pod_spec(ctx["core"])["volumes"]}
    check(vols.get("data", {}).get("persistentVolumeClaim", {}).get("claimName") == "meno-core-data",
          "existing claim used")
    check(not m.all("PersistentVolumeClaim"), "no claim created")
    check(secret_refs(ctx["bridge"]) == {"meno-jwks", "meno-grpc-token", "meno-bridge-tls", "meno-core-tls"},
          "bridge Secrets by name", secret_refs(ctx["bridge"]))
    check(benv.get("MENO_JWT_JWKS_FILE") == "/etc/meno/jwt/jwks.json", "JWKS from a file")
    for sm in m.all("ServiceMonitor"):
        if sm["metadata"]["name"].endswith("-bridge"):
            check(sm["spec"]["endpoints"][0]["scheme"] == "https", "bridge ServiceMonitor scrapes https")
    check_migration_job(m, ctx, expect=False)
    check_notes(notes, "wss://realtime.example.com/ws",
                expect=["create secret tls meno-bridge-tls", "create secret generic meno-core-tls",
                        "create secret generic meno-jwks --from-file=jwks.json="])
    del full


def case_scale_out(m, ctx, release, notes):
    core, cc, cenv = ctx["core"], ctx["cc"], ctx["cenv"]
    full = f"{release}-meno-realtime"
    spec = core["spec"]
    check(spec.get("replicas") == 3, "three core replicas", spec.get("replicas"))
    strategy = spec.get("strategy", {})
    check(strategy.get("type") == "RollingUpdate"
          and strategy.get("rollingUpdate") == {"maxSurge": 1, "maxUnavailable": 0},
          "core RollingUpdate, maxSurge 1, maxUnavailable 0", strategy)
    check(cenv.get("MENO_STORE") == "scylla", "store scylla")
    check(not m.all("PersistentVolumeClaim") and not any(v["name"] == "data" for v in pod_spec(core)["volumes"]),
          "no volume for the store")

    # Membership: the headless Service of ready replicas, re-resolved by each.
    peers = m.one("Service", "-core-peers")
    if check(peers is not None, "a headless Service <fullname>-core-peers"):
        ps = peers["spec"]
        check(ps.get("clusterIP") == "None", "peers Service is headless (clusterIP None)", ps.get("clusterIP"))
        check(ps.get("publishNotReadyAddresses") is False, "peers Service leaves not-ready replicas out")
        check(labels_match(ps["selector"], core["spec"]["template"]["metadata"]["labels"])
              and not labels_match(ps["selector"], ctx["bridge"]["spec"]["template"]["metadata"]["labels"]),
              "peers Service selects the core pods only")
        check([(p["name"], p["port"], p["targetPort"]) for p in ps["ports"]] == [("grpc", 50051, "grpc")],
              "peers Service has the one port grpc 50051", ps["ports"])
        ns = peers["metadata"]["namespace"]
        want = f"{peers['metadata']['name']}.{ns}.svc.cluster.local:50051"
        check(cenv.get("MENO_PEERS_DNS") == want, f"--peers-dns {want}", cenv.get("MENO_PEERS_DNS"))
        check(len(peers["metadata"]["name"]) <= 63, "peers Service name fits a DNS label")
    check("MENO_PEERS" not in cenv, "no static --peers beside --peers-dns")
    check(cenv.get("MENO_SCYLLA_TABLE_CORE_REPLICAS") == "core_replicas"
          and cenv.get("MENO_SCYLLA_TABLE_SESSION_OWNERS") == "session_owners",
          "the ownership tables are named (the migration Job gets the same)")
    check(cenv.get("MENO_OWNERSHIP_TTL") == "4s", "--ownership-ttl from core.ownershipTtl", cenv.get("MENO_OWNERSHIP_TTL"))

    # Each replica's id and address, from the downward API.
    env_list = cc.get("env", [])
    names = [e["name"] for e in env_list]
    by_name = {e["name"]: e for e in env_list}
    field = lambda name: ((by_name.get(name) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
    check(field("MENO_REPLICA_ID") == "metadata.name", "--replica-id is the pod name", by_name.get("MENO_REPLICA_ID"))
    check(field("POD_IP") == "status.podIP", "POD_IP from status.podIP")
    check((by_name.get("MENO_ADVERTISE_URL") or {}).get("value") == "http://$(POD_IP):50051",
          "--advertise-url http://$(POD_IP):50051", by_name.get("MENO_ADVERTISE_URL"))
    check("POD_IP" in names and "MENO_ADVERTISE_URL" in names
          and names.index("POD_IP") < names.index("MENO_ADVERTISE_URL"),
          "POD_IP is defined before MENO_ADVERTISE_URL refers to it")
    configmap_keys = set((ctx["configmaps"].get(f"{full}-core") or {}).get("data", {}))
    check(not configmap_keys & {"MENO_REPLICA_ID", "MENO_ADVERTISE_URL"},
          "per-pod settings are not in the shared ConfigMap")

    # Handoff and disruptions.
    grace = pod_spec(core).get("terminationGracePeriodSeconds", 30)
    drain = seconds(cenv.get("MENO_DRAIN_TIMEOUT", "0s"))
    check(grace >= drain + 10, f"core grace {grace}s leaves 10 s after the {drain:g}s drain to release ownerships")
    pdbs = [p for p in m.all("PodDisruptionBudget") if p["metadata"]["name"] == core["metadata"]["name"]]
    check(len(pdbs) == 1 and pdbs[0]["spec"].get("maxUnavailable") == 1, "core PDB maxUnavailable 1",
          [p["spec"] for p in pdbs])
    spread = pod_spec(core).get("topologySpreadConstraints", [])
    check(sorted(c["topologyKey"] for c in spread) == ["kubernetes.io/hostname", "topology.kubernetes.io/zone"]
          and all(labels_match(c["labelSelector"]["matchLabels"], core["spec"]["template"]["metadata"]["labels"])
                  for c in spread),
          "core replicas spread over zones and nodes")
    check(not any(h["spec"]["scaleTargetRef"]["name"] == core["metadata"]["name"]
                  for h in m.all("HorizontalPodAutoscaler")), "the core is never autoscaled")

    # Replicas reach one another's gRPC port.
    np = m.all("NetworkPolicy")[0]
    core_labels = core["spec"]["template"]["metadata"]["labels"]
    check(any(any(p.get("port") == 50051 for p in r.get("ports", []))
              and any("podSelector" in peer and "namespaceSelector" not in peer
                      and labels_match(peer["podSelector"].get("matchLabels", {}), core_labels)
                      for peer in r.get("from", []))
              for r in np["spec"]["ingress"]),
          "NetworkPolicy: core replicas may reach one another's gRPC port")
    check_migration_job(m, ctx, expect=True)
    check_notes(notes, "ws://127.0.0.1:8080/ws",
                expect=[f"{full}-core  3 replicas (members: {full}-core-peers, ownership TTL 4s)"],
                absent=["WARNING", "exactly one"])


# --- documentation -----------------------------------------------------------


def leaf_paths(node, prefix=""):
    """Dotted paths of values.yaml's leaves (scalars, lists, empty maps)."""
    if isinstance(node, dict) and node and prefix not in FREEFORM:
        for key, value in node.items():
            yield from leaf_paths(value, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


# Maps passed to Kubernetes as a whole: documented as one value.
FREEFORM = {"podSecurityContext", "containerSecurityContext", "bridge.resources", "core.resources",
            "store.scylla.migrations.resources"}


def schema_paths(schema, prefix=""):
    props = schema.get("properties")
    if props and prefix not in FREEFORM:
        for key, sub in props.items():
            if key == "global":
                continue
            if "$ref" in sub and not sub.get("properties"):
                yield f"{prefix}.{key}" if prefix else key
            else:
                yield from schema_paths(sub, f"{prefix}.{key}" if prefix else key)
    else:
        yield prefix


def docs(chart):
    with open(f"{chart}/values.yaml") as f:
        values = yaml.safe_load(f)
    with open(f"{chart}/values.schema.json") as f:
        schema = json.load(f)
    with open(f"{chart}/README.md") as f:
        readme = f.read()
    value_paths = set(leaf_paths(values))
    schema_set = set(schema_paths(schema))
    missing_readme = sorted(p for p in value_paths if f"`{p}`" not in readme)
    check(not missing_readme, f"chart README lists all {len(value_paths)} values", missing_readme)
    check(schema.get("additionalProperties") is False, "schema rejects unknown top-level keys")
    open_objects = []

    def walk(node, where):
        if isinstance(node, dict):
            if node.get("type") == "object" and "properties" in node and node.get("additionalProperties") is not False:
                open_objects.append(where)
            for key, value in node.items():
                walk(value, f"{where}/{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}/{i}")

    walk(schema, "#")
    check(not open_objects, "every schema object with properties has additionalProperties: false", open_objects)
    only_schema = sorted(schema_set - value_paths)
    check(not only_schema, "every schema value has a default in values.yaml", only_schema)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("case", nargs="?")
    parser.add_argument("manifests", nargs="?")
    parser.add_argument("--notes")
    parser.add_argument("--release", default="r")
    parser.add_argument("--docs")
    args = parser.parse_args()
    if args.docs:
        docs(args.docs)
    else:
        m = Manifests(args.manifests)
        ctx = common_checks(m, args.case, args.release)
        if ctx is not None:
            {
                "default": case_default,
                "minimal-dev": case_minimal_dev,
                "production": case_production,
                "production-no-crd": lambda m_, c, r, n: case_production(m_, c, r, n, crd=False),
                "tls-everywhere": case_tls_everywhere,
                "scale-out": case_scale_out,
            }[args.case](m, ctx, args.release, args.notes)
    print(f"assertions: {PASSED} passed, {FAILED} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()

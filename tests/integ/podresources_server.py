"""podresources_server.py — a real gRPC server of the kubelet's pod-resources API
(v1.PodResourcesLister/List) on a unix socket, for the workload tests. python3-grpcio serves it;
the answer is encoded here in protobuf's wire format from the field numbers of the kubelet's
published api.proto (ListPodResourcesResponse.pod_resources = 1; PodResources name = 1,
namespace = 2, containers = 3; ContainerResources name = 1, devices = 2; ContainerDevices
resource_name = 1, device_ids = 2), independently of the C decoder vigild uses."""
import threading
import time
from concurrent import futures

import grpc


def _varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _field(num, payload):
    if isinstance(payload, str):
        payload = payload.encode()
    return _varint((num << 3) | 2) + _varint(len(payload)) + payload


def encode(pods):
    """pods: [{"name", "namespace", "containers": [{"name", "devices": [(resource, [ids])]}]}]"""
    out = b""
    for p in pods:
        body = _field(1, p["name"]) + _field(2, p["namespace"])
        for c in p.get("containers", []):
            cb = _field(1, c["name"])
            for resource, ids in c.get("devices", []):
                db = _field(1, resource) + b"".join(_field(2, i) for i in ids)
                cb += _field(2, db)
            body += _field(3, cb)
        out += _field(1, body)
    return out


class PodResourcesServer:
    """Serves List from self.pods; self.delay seconds before each answer (a slow kubelet)."""

    def __init__(self, path):
        self.path = path
        self.pods = []
        self.delay = 0.0
        self.calls = 0
        self._lock = threading.Lock()
        handler = grpc.method_handlers_generic_handler("v1.PodResourcesLister", {
            "List": grpc.unary_unary_rpc_method_handler(
                self._list, request_deserializer=lambda b: b, response_serializer=lambda b: b)})
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self.server.add_generic_rpc_handlers((handler,))
        self.server.add_insecure_port("unix:" + path)

    def _list(self, request, context):
        with self._lock:
            self.calls += 1
            pods, delay = list(self.pods), self.delay
        if delay:
            time.sleep(delay)
        return encode(pods)

    def set(self, pods=None, delay=None):
        with self._lock:
            if pods is not None:
                self.pods = pods
            if delay is not None:
                self.delay = delay

    def __enter__(self):
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop(0)
        return False

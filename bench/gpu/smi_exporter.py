#!/usr/bin/env python3
"""smi_exporter.py PORT — a minimal exporter in the style of nvidia_gpu_exporter: every scrape runs
`nvidia-smi --query-gpu=... --format=csv` and turns the CSV into Prometheus text. Benchmark peer."""
import http.server
import subprocess
import sys

Q = ("index,uuid,name,temperature.gpu,temperature.memory,power.draw,utilization.gpu,utilization.memory,"
     "memory.used,memory.free,memory.total,clocks.sm,clocks.mem,pstate,pcie.link.gen.current,"
     "pcie.link.width.current,enforced.power.limit,ecc.errors.corrected.volatile.total,"
     "ecc.errors.uncorrected.volatile.total")


class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        out = subprocess.run(["nvidia-smi", "--query-gpu=" + Q, "--format=csv,noheader,nounits"],
                             capture_output=True, text=True).stdout
        names = Q.split(",")
        lines = []
        for row in out.strip().splitlines():
            vals = [v.strip() for v in row.split(",")]
            labels = 'gpu="%s",uuid="%s",name="%s"' % (vals[0], vals[1], vals[2])
            for n, v in zip(names[3:], vals[3:]):
                try:
                    float(v.lstrip("P"))
                except ValueError:
                    continue
                lines.append("nvidia_smi_%s{%s} %s" % (n.replace(".", "_"), labels, v.lstrip("P")))
        body = ("\n".join(lines) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()

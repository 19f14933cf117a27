// A server under test in a second language for tests/test_sut.py: answers every request
// 404 on port argv[2], after logging what Date.now() returned for it (one JSON line each).
const http = require("http");
const port = Number(process.argv[2]);
http
  .createServer((req, res) => {
    console.log(JSON.stringify({ now: Date.now(), method: req.method, url: req.url }));
    res.writeHead(404, { "Content-Type": "text/plain" });
    res.end("not an MDM server");
  })
  .listen(port, "127.0.0.1");
process.on("SIGTERM", () => process.exit(0));

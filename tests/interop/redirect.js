// Preloaded with `node --require`: send the sender's fixed hosts to the local fake WNS.
// Transport-level only, like a hosts-file entry plus a port forward: the sender's own code
// is untouched, TLS still verifies the certificate for the original host name (against the
// dmemu CA given in NODE_EXTRA_CA_CERTS), and the Host header keeps the original name.
'use strict';
const https = require('https');

const port = Number(process.env.DMEMU_WNS_PORT);
const isWnsHost = (host) => host === 'login.live.com' || /\.notify\.windows\.com$/.test(host);
const original = https.request;

https.request = function (options, callback) {
  const host = options.hostname || options.host;
  if (typeof options === 'object' && isWnsHost(host)) {
    options = Object.assign({}, options, {
      host: '127.0.0.1',
      hostname: '127.0.0.1',
      port,
      servername: host,
      headers: Object.assign({}, options.headers, { Host: host }),
    });
  }
  return original.call(this, options, callback);
};

// One raw push with the npm `wns` package (tjanczuk/wns), printed as a JSON line.
// usage: node --require ./redirect.js send_raw.js CHANNEL_URI [ACCESS_TOKEN]
'use strict';
const wns = require('wns');

const [channel, accessToken] = process.argv.slice(2);
const options = {
  client_id: process.env.WNS_CLIENT_ID,
  client_secret: process.env.WNS_CLIENT_SECRET,
  headers: { 'X-WNS-Cache-Policy': 'cache' },
};
if (accessToken) options.accessToken = accessToken;

wns.sendRaw(channel, 'dmemu interop', options, (error, result) => {
  const r = error || result || {};
  console.log(JSON.stringify({
    ok: !error,
    statusCode: r.statusCode || null,
    newAccessToken: r.newAccessToken || null,
    msgId: (r.headers && r.headers['x-wns-msg-id']) || null,
    message: error ? error.message : null,
  }));
});

// Drives npm @dopplerhq/node-sdk against doppler_server.py (setBaseUrl).
// Usage: node doppler_node_client.js '{"url":URL,"token":T,"ops":[{"op":"download",
//        "project":P,"config":C},{"op":"list",...},{"op":"get",...,"name":N}]}'
// Prints one JSON object: {"results":[...]} where each result is {ok, data} or
// {error:{status, message}}. Needs NODE_EXTRA_CA_CERTS for the test CA.
'use strict';
const path = require('path');
const modules = path.join(__dirname, '..', 'node', 'node_modules');
const {DopplerSDK} = require(path.join(modules, '@dopplerhq/node-sdk'));

async function main() {
  const a = JSON.parse(process.argv[2]);
  const sdk = new DopplerSDK({accessToken: a.token});
  sdk.setBaseUrl(a.url);
  const results = [];
  for (const o of a.ops) {
    try {
      let data;
      if (o.op === 'download') {
        data = await sdk.secrets.download(o.project, o.config, {format: 'json'});
      } else if (o.op === 'list') {
        data = await sdk.secrets.list(o.project, o.config);
      } else if (o.op === 'get') {
        data = await sdk.secrets.get(o.project, o.config, o.name);
      } else {
        throw new Error('unknown op ' + o.op);
      }
      results.push({ok: true, data});
    } catch (e) {
      results.push({error: {status: e.statusCode,
                            type: e.constructor.name,
                            detail: typeof e.detail === "object" ? e.detail : null}});
    }
  }
  process.stdout.write(JSON.stringify({results}) + '\n');
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(2); });

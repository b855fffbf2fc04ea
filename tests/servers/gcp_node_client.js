// Drives npm @google-cloud/secret-manager (REST fallback) against gcp_server.py.
// Usage: node gcp_node_client.js '{"port":N,"credentials":{authorized_user JSON},
//        "token_uri":URL,"project":P,"ops":[{"op":"access","name":...},...]}'
// Prints one JSON object: {"results":[...]} where each result is {ok, ...} or
// {error:{code, message}}. Needs NODE_EXTRA_CA_CERTS for the test CA.
'use strict';
const path = require('path');
const modules = path.join(__dirname, '..', 'node', 'node_modules');
const {SecretManagerServiceClient} = require(path.join(modules, '@google-cloud/secret-manager'));
const {UserRefreshClient} = require(path.join(modules, 'google-auth-library'));

async function main() {
  const a = JSON.parse(process.argv[2]);
  const c = a.credentials;
  const auth = new UserRefreshClient({
    clientId: c.client_id, clientSecret: c.client_secret, refreshToken: c.refresh_token,
    endpoints: {oauth2TokenUrl: a.token_uri},
  });
  const client = new SecretManagerServiceClient({
    fallback: true, apiEndpoint: '127.0.0.1', port: a.port, protocol: 'https',
    authClient: auth,
  });
  const results = [];
  for (const o of a.ops) {
    try {
      if (o.op === 'access') {
        const [v] = await client.accessSecretVersion({name: o.name});
        results.push({ok: true, name: v.name,
                      data_b64: Buffer.from(v.payload.data).toString('base64'),
                      crc: v.payload.dataCrc32c === null || v.payload.dataCrc32c === undefined
                        ? null : String(v.payload.dataCrc32c)});
      } else if (o.op === 'version') {
        const [v] = await client.getSecretVersion({name: o.name});
        results.push({ok: true, name: v.name, state: v.state});
      } else if (o.op === 'list') {
        const [secrets] = await client.listSecrets({parent: o.parent, pageSize: o.pageSize});
        results.push({ok: true, names: secrets.map((s) => s.name)});
      }
    } catch (e) {
      results.push({error: {code: e.code, message: String(e.message)}});
    }
  }
  await client.close();
  process.stdout.write(JSON.stringify({results}) + '\n');
}
main().catch((e) => { process.stderr.write(String(e && e.stack || e) + '\n'); process.exit(2); });

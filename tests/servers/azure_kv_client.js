// azure_kv_client.js - drives @azure/keyvault-secrets (Azure's own JavaScript
// client) against tests/servers/azure_server.py, for test_azure_server.py and
// the integration tests.
//
//   node azure_kv_client.js '{"vault": URL, "authority": URL, "tenant": T,
//        "client_id": C, "client_secret": S, "ops": [{"op": "get", "name": N,
//        "version": V}, {"op": "list"}, {"op": "set", "name": N, "value": V}]}'
//
// Prints one JSON line: {"results": [...], "token_requests": n}.  An op that
// fails gives {"error": {"code", "statusCode", "message"}}.  The credential
// is a fixed test one (client credentials against the server's v2.0 token
// endpoint, written here with fetch), so nothing but the vault client comes
// from npm.  Run with NODE_PATH=tests/node/node_modules and
// NODE_EXTRA_CA_CERTS=<the test CA>.
"use strict";

const { SecretClient } = require("@azure/keyvault-secrets");

const args = JSON.parse(process.argv[2]);
let tokenRequests = 0;

const credential = {
	async getToken(scopes, options) {
		tokenRequests++;
		const tenant = (options && options.tenantId) || args.tenant;
		const body = new URLSearchParams({
			grant_type: "client_credentials",
			client_id: args.client_id,
			client_secret: args.client_secret,
			scope: [].concat(scopes).join(" "),
		});
		const r = await fetch(`${args.authority}/${tenant}/oauth2/v2.0/token`, {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded" },
			body,
		});
		const j = await r.json();
		if (!r.ok)
			throw new Error(`token endpoint ${r.status}: ${j.error}`);
		return { token: j.access_token, expiresOnTimestamp: Date.now() + j.expires_in * 1000 };
	},
};

async function run() {
	const client = new SecretClient(args.vault, credential, {
		serviceVersion: args.service_version || "7.4",
		disableChallengeResourceVerification: true,
		retryOptions: { maxRetries: 0 },
	});
	const results = [];
	for (const op of args.ops) {
		try {
			if (op.op === "get") {
				const s = await client.getSecret(op.name, op.version ? { version: op.version } : {});
				results.push({ name: s.name, value: s.value, version: s.properties.version,
					contentType: s.properties.contentType || null,
					enabled: s.properties.enabled });
			} else if (op.op === "list") {
				const names = [];
				for await (const p of client.listPropertiesOfSecrets())
					names.push(p.name);
				results.push({ names });
			} else if (op.op === "set") {
				const s = await client.setSecret(op.name, op.value,
					op.content_type ? { contentType: op.content_type } : {});
				results.push({ name: s.name, version: s.properties.version });
			} else {
				throw new Error(`unknown op ${op.op}`);
			}
		} catch (e) {
			results.push({ error: { code: e.code || null, statusCode: e.statusCode || null,
				message: String(e.message).split("\n")[0] } });
		}
	}
	process.stdout.write(JSON.stringify({ results, token_requests: tokenRequests }) + "\n");
}

run().catch((e) => {
	process.stderr.write(`azure_kv_client: ${e.stack || e}\n`);
	process.exit(1);
});

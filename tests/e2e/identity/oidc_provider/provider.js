// A real OpenID Connect provider (panva/oidc-provider) for jaif's single sign-on tests, on loopback.
//
// Configured by the environment: PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI. Its development
// interactions show a login form (any login, any password) and a consent form. The login names the
// account: "ada@example.org" signs in as subject "ada@example.org" with that e-mail address marked
// verified; a login starting with "unverified:" releases the address after the colon with
// email_verified false; a login starting with "noemail:" releases no address at all.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;

function claimsOf(login) {
  if (login.startsWith('noemail:')) return { sub: login, name: login.slice(8) };
  if (login.startsWith('unverified:')) {
    const email = login.slice(11);
    return { sub: login, email, email_verified: false, name: email.split('@')[0] };
  }
  return { sub: login, email: login, email_verified: true, name: login.split('@')[0] };
}

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID,
    client_secret: process.env.CLIENT_SECRET,
    redirect_uris: [process.env.REDIRECT_URI],
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
  cookies: { keys: ['jaif-test-cookie-key'] },
  features: { devInteractions: { enabled: true } },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return claimsOf(id); } };
  },
});

provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening at ${issuer}`);
});

/* pki.h: keys, certificates and CSRs on disk, through OpenSSL's API.
 *
 * What `pki list|inspect|csr|verify` in mmp-cli and the certificate checks of
 * `xmpp certs` and `xmpp enable` need: read PEM files and describe them, make
 * a key and a certificate signing request, verify a certificate against a CA
 * bundle, check that a key belongs to a certificate and that the certificate
 * is within its validity period.  Never shells out.  Blocking file I/O: call
 * it from the control path (small files), never from a hot path.
 *
 * Every function that can fail for a reason an admin must act on takes
 * `why` (may be NULL), a buffer of why_len bytes that receives one line:
 * what was wrong and what to do. */
#ifndef XMPPD_PKI_H
#define XMPPD_PKI_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "ctl.h"

/* Files larger than this are not PEM material we read. */
#define PKI_MAX_FILE (1024 * 1024)

enum pki_kind {
    PKI_KIND_UNKNOWN = 0, /* not PEM, or no block we know */
    PKI_KIND_KEY,         /* a private key (maybe with certificates after it) */
    PKI_KIND_CERT,        /* one certificate */
    PKI_KIND_BUNDLE,      /* several certificates (a chain or CA bundle) */
    PKI_KIND_CSR,         /* a certificate signing request (PKCS#10) */
};

/* OpenSSL error reporting, shared by pki.c and tls.c. */

/* pki_ssl_fail writes one printf-formatted line into why (why_len bytes;
 * why may be NULL), clears OpenSSL's error queue so that stale errors never
 * leak into a later message, and returns rc (for `return pki_ssl_fail(...)`). */
int pki_ssl_fail(char *why, size_t why_len, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* pki_ssl_reason returns the reason string (static) of OpenSSL error code e
 * (ERR_peek_error() for the oldest queued error, ERR_peek_last_error() for
 * the newest), or "unknown OpenSSL error" when e is 0 or has none.  Read it
 * before pki_ssl_fail clears the queue. */
const char *pki_ssl_reason(unsigned long e);

/* pki_kind_name returns "key", "certificate", "bundle", "csr" or "unknown". */
const char *pki_kind_name(enum pki_kind kind);

/* What a file holds.  For bundles the fields describe the first certificate. */
struct pki_info {
    char file[256]; /* the file's name as given (pki_inspect) or its base
                       name (pki_list) */
    enum pki_kind kind;
    bool encrypted;    /* a key protected by a passphrase (not usable) */
    char key_type[32]; /* "EC P-256", "RSA 2048", ... ("" if none) */
    char subject[256]; /* RFC 2253 form: "CN=node1" (certs and CSRs) */
    char issuer[256];  /* certs only */
    char sans[512];    /* "DNS:example.com, IP:10.0.0.1" */
    time_t not_before; /* certs only, else 0 */
    time_t not_after;  /* certs only, else 0 */
    bool is_ca;        /* basicConstraints CA:TRUE */
    int ncerts;        /* certificates in the file */
};

/* pki_inspect reads the file at path and describes it in *out.  0;
 * XE_NOTFOUND (no such file), XE_IO, XE_LIMIT (over PKI_MAX_FILE),
 * XE_CORRUPT (not a key, certificate or CSR in PEM). */
int pki_inspect(const char *path, struct pki_info *out, char *why, size_t why_len);

/* pki_list describes every key, certificate and CSR in directory dir (not
 * recursive; dot files and other files are skipped), sorted by name.
 * *out is a malloc'ed array of *n entries (owned; free with free()), NULL
 * when n is 0.  0, XE_NOTFOUND (no such directory), XE_IO, XE_NOMEM. */
int pki_list(const char *dir, struct pki_info **out, size_t *n, char *why,
             size_t why_len);

/* pki_info_json returns the description as a JSON object (owned), with
 * not_before/not_after as ISO 8601 UTC strings; NULL on no memory. */
json_t *pki_info_json(const struct pki_info *info);

enum pki_keytype {
    PKI_KEY_EC_P256 = 0, /* the default */
    PKI_KEY_RSA_2048,
};

/* pki_csr makes a new private key and a CSR for it: <basename>.key (mode
 * 0600, created exclusively) and <basename>.csr.  cn (may be NULL: the last
 * path component of basename) is the subject's commonName; sans (n entries,
 * borrowed) become the subjectAltName extension: "DNS:name", "IP:addr", or
 * a bare name or address (the kind is guessed).  With no SANs and a cn that
 * is a DNS name, the SAN is DNS:<cn> (clients check SANs, not CN: RFC 6125
 * §6.4.4).  The CSR asks for extendedKeyUsage serverAuth, clientAuth.
 * 0; XE_EXISTS (a file is already there: nothing is overwritten), XE_INVAL
 * (a bad name or SAN), XE_IO, XE_TLS.  On failure no file is left behind. */
int pki_csr(const char *basename, enum pki_keytype type, const char *cn,
            const char *const *sans, size_t n, char *why, size_t why_len);

/* pki_verify checks the certificate in cert_path (its first certificate; any
 * further ones are untrusted intermediates) against the CA certificates in
 * bundle_path, at time now (0: the current time), for TLS server use.
 * 0, or XE_AUTH when it does not verify (why names OpenSSL's reason), or
 * XE_NOTFOUND/XE_IO/XE_CORRUPT for unreadable input. */
int pki_verify(const char *cert_path, const char *bundle_path, time_t now, char *why,
               size_t why_len);

/* pki_key_matches checks that the private key in key_path belongs to the
 * (first) certificate in cert_path.  0, XE_AUTH (it does not), XE_PERM (the
 * key file is readable by group or others: why says "key file <path> is
 * readable by group or others (mode 0644): chmod 600 <path>"), or
 * XE_NOTFOUND/XE_IO/XE_CORRUPT.  Every function here that reads a private
 * key to use it (this one, pki_check_certs, pki_load_identity) refuses such
 * a file the same way; pki_inspect and pki_list only describe it. */
int pki_key_matches(const char *key_path, const char *cert_path, char *why,
                    size_t why_len);

/* pki_check_validity checks that the (first) certificate in cert_path is
 * valid at time now (0: the current time).  0, XE_STATE (expired or not
 * yet valid: why says which and when), or XE_NOTFOUND/XE_IO/XE_CORRUPT. */
int pki_check_validity(const char *cert_path, time_t now, char *why, size_t why_len);

/* pki_check_certs runs what `xmpp certs` and `xmpp enable` require of a
 * key, certificate and (optional, may be NULL) CA bundle: the key file is
 * private to its owner (mode 0600 or stricter), the key matches, the
 * certificate is valid now, and it verifies against the bundle.  The first
 * failure is returned, as above. */
int pki_check_certs(const char *key_path, const char *cert_path, const char *bundle_path,
                    time_t now, char *why, size_t why_len);

/* pki_load_identity runs the checks of pki_check_certs and hands back what
 * it read, so that a TLS context uses exactly the files it checked, each
 * read once: *key (returned owned; EVP_PKEY_free) and *certs (returned
 * owned: the certificate, then any chain certificates that follow it in
 * cert_path; sk_X509_pop_free with X509_free).  Returns as pki_check_certs;
 * on failure *key and *certs are NULL. */
int pki_load_identity(const char *key_path, const char *cert_path,
                      const char *bundle_path, time_t now, EVP_PKEY **key,
                      STACK_OF(X509) * *certs, char *why, size_t why_len);

/* ---- control handlers ------------------------------------------------- */

/* pki_path joins name, a plain file name inside dir, into out (len bytes).
 * Names with '/', a leading '.', or control characters are refused: control
 * requests can reach only the node's pki directory.  0 or XE_INVAL. */
int pki_path(const char *dir, const char *name, char *out, size_t len);

/* Handlers for the pki.* control commands (docs/control-protocol.md), on the
 * node's pki directory pki_dir (borrowed).  The daemon registers them with a
 * one-line wrapper that passes its pki dir.  Same contract as a struct
 * ctl_command fn: 0 with *result (owned), or a negative XE code with err;
 * an argument not listed here is refused (invalid-argument).
 *   pki.list     {}                                   -> {"dir","files":[info]}
 *   pki.inspect  {"file"}                             -> info
 *   pki.csr      {"basename","cn"?,"sans"?:[...],"key_type"?:"ec"|"rsa"}
 *                                                     -> {"key","csr","subject","sans"}
 *   pki.verify   {"cert","bundle"}                    ->
 * {"cert","bundle","verified":true} where info is pki_info_json. */
int pki_cmd_list(const char *pki_dir, json_t *args, json_t **result,
                 struct ctl_error *err);
int pki_cmd_inspect(const char *pki_dir, json_t *args, json_t **result,
                    struct ctl_error *err);
int pki_cmd_csr(const char *pki_dir, json_t *args, json_t **result,
                struct ctl_error *err);
int pki_cmd_verify(const char *pki_dir, json_t *args, json_t **result,
                   struct ctl_error *err);

#endif

/* pki.c: read, describe, make and check keys, certificates and CSRs with
 * OpenSSL's API.  See pki.h. */
#include "pki.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "addr.h"
#include "err.h"
#include "jid.h"

int pki_ssl_fail(char *why, size_t why_len, int rc, const char *fmt, ...)
{
    if (why != NULL && why_len > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    ERR_clear_error();
    return rc;
}

const char *pki_ssl_reason(unsigned long e)
{
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    return r != NULL ? r : "unknown OpenSSL error";
}

const char *pki_kind_name(enum pki_kind kind)
{
    switch (kind) {
    case PKI_KIND_KEY:
        return "key";
    case PKI_KIND_CERT:
        return "certificate";
    case PKI_KIND_BUNDLE:
        return "bundle";
    case PKI_KIND_CSR:
        return "csr";
    default:
        return "unknown";
    }
}

/* read_file loads a whole small file into a memory BIO (owned by the
 * caller).  It runs on the loop thread (control requests), so it must not
 * block: the file is opened O_NONBLOCK and anything but a regular file (a
 * FIFO would wait for a writer forever) is refused.  The staging buffer may
 * hold a private key: it is wiped before it is freed (the BIO wipes its own
 * memory when freed).  *mode (may be NULL) receives the permission bits of
 * the descriptor read, so a check on them is on the file used. */
static int read_file_ex(const char *path, BIO **out, mode_t *mode, char *why,
                        size_t why_len)
{
    struct stat st;
    BIO *b;
    char *data = NULL;
    size_t n = 0;
    int rc = 0;

    *out = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return pki_ssl_fail(why, why_len, errno == ENOENT ? XE_NOTFOUND : XE_IO,
                            "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = pki_ssl_fail(why, why_len, XE_IO, "cannot stat %s: %s", path,
                          strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = pki_ssl_fail(why, why_len, XE_CORRUPT, "%s is not a regular file", path);
        goto out;
    }
    if (mode != NULL)
        *mode = st.st_mode & 07777;
    data = malloc(PKI_MAX_FILE + 1);
    if (data == NULL) {
        rc = pki_ssl_fail(why, why_len, XE_NOMEM, "out of memory reading %s", path);
        goto out;
    }
    while (n < PKI_MAX_FILE + 1) {
        ssize_t r = read(fd, data + n, PKI_MAX_FILE + 1 - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            rc = pki_ssl_fail(why, why_len, XE_IO, "cannot read %s: %s", path,
                              strerror(errno));
            goto out;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    if (n > PKI_MAX_FILE) {
        rc = pki_ssl_fail(why, why_len, XE_LIMIT,
                          "%s is over %d bytes: not a PEM key or certificate", path,
                          PKI_MAX_FILE);
        goto out;
    }
    b = BIO_new(BIO_s_mem());
    if (b == NULL || BIO_write(b, data, (int)n) != (int)n) {
        BIO_free(b);
        rc = pki_ssl_fail(why, why_len, XE_NOMEM, "out of memory reading %s", path);
        goto out;
    }
    *out = b;

out:
    if (data != NULL) {
        OPENSSL_cleanse(data, n);
        free(data);
    }
    close(fd);
    return rc;
}

static int read_file(const char *path, BIO **out, char *why, size_t why_len)
{
    return read_file_ex(path, out, NULL, why, why_len);
}

static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    (void)buf, (void)size, (void)rwflag, (void)u;
    return -1;
}

static void key_type(EVP_PKEY *k, char *out, size_t len)
{
    int id = EVP_PKEY_get_base_id(k);
    if (id == EVP_PKEY_RSA) {
        snprintf(out, len, "RSA %d", EVP_PKEY_get_bits(k));
    } else if (id == EVP_PKEY_EC) {
        char group[64] = "";
        size_t glen = 0;
        EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen);
        const char *g = group;
        if (strcmp(group, "prime256v1") == 0)
            g = "P-256";
        else if (strcmp(group, "secp384r1") == 0)
            g = "P-384";
        else if (strcmp(group, "secp521r1") == 0)
            g = "P-521";
        snprintf(out, len, "EC %s", g);
    } else {
        const char *n = EVP_PKEY_get0_type_name(k);
        snprintf(out, len, "%s", n != NULL ? n : "unknown");
    }
}

static void name_text(const X509_NAME *name, char *out, size_t len)
{
    out[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return;
    X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int n = BIO_read(b, out, (int)len - 1);
    out[n > 0 ? n : 0] = '\0';
    BIO_free(b);
}

static void append(char *out, size_t len, const char *prefix, const char *s, size_t slen)
{
    size_t used = strlen(out);
    snprintf(out + used, len - used, "%s%s%.*s", used ? ", " : "", prefix, (int)slen, s);
}

static void sans_text(const GENERAL_NAMES *gens, char *out, size_t len)
{
    out[0] = '\0';
    for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        const ASN1_STRING *s = NULL;
        const char *prefix = NULL;
        switch (g->type) {
        case GEN_DNS:
            s = g->d.dNSName, prefix = "DNS:";
            break;
        case GEN_EMAIL:
            s = g->d.rfc822Name, prefix = "email:";
            break;
        case GEN_URI:
            s = g->d.uniformResourceIdentifier, prefix = "URI:";
            break;
        case GEN_IPADD: {
            char a[INET6_ADDRSTRLEN] = "?";
            int alen = ASN1_STRING_length(g->d.iPAddress);
            const unsigned char *p = ASN1_STRING_get0_data(g->d.iPAddress);
            if (alen == 4)
                inet_ntop(AF_INET, p, a, sizeof a);
            else if (alen == 16)
                inet_ntop(AF_INET6, p, a, sizeof a);
            append(out, len, "IP:", a, strlen(a));
            continue;
        }
        default:
            append(out, len, "other", "", 0);
            continue;
        }
        append(out, len, prefix, (const char *)ASN1_STRING_get0_data(s),
               (size_t)ASN1_STRING_length(s));
    }
}

static time_t asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return 0;
    return timegm(&tm);
}

static void describe_cert(X509 *x, struct pki_info *info)
{
    name_text(X509_get_subject_name(x), info->subject, sizeof info->subject);
    name_text(X509_get_issuer_name(x), info->issuer, sizeof info->issuer);
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    if (gens != NULL) {
        sans_text(gens, info->sans, sizeof info->sans);
        GENERAL_NAMES_free(gens);
    }
    info->not_before = asn1_time(X509_get0_notBefore(x));
    info->not_after = asn1_time(X509_get0_notAfter(x));
    info->is_ca = (X509_get_extension_flags(x) & EXFLAG_CA) != 0;
    EVP_PKEY *k = X509_get0_pubkey(x);
    if (k != NULL)
        key_type(k, info->key_type, sizeof info->key_type);
}

static void describe_csr(X509_REQ *r, struct pki_info *info)
{
    name_text(X509_REQ_get_subject_name(r), info->subject, sizeof info->subject);
    STACK_OF(X509_EXTENSION) *exts = X509_REQ_get_extensions(r);
    if (exts != NULL) {
        GENERAL_NAMES *gens = X509V3_get_d2i(exts, NID_subject_alt_name, NULL, NULL);
        if (gens != NULL) {
            sans_text(gens, info->sans, sizeof info->sans);
            GENERAL_NAMES_free(gens);
        }
        sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    }
    EVP_PKEY *k = X509_REQ_get0_pubkey(r);
    if (k != NULL)
        key_type(k, info->key_type, sizeof info->key_type);
}

/* describe walks the PEM blocks of b and fills info. */
static int describe(BIO *b, const char *label, struct pki_info *info, char *why,
                    size_t why_len)
{
    char *name = NULL, *header = NULL;
    unsigned char *data = NULL;
    long len = 0;
    bool have_key = false, have_csr = false;

    while (PEM_read_bio(b, &name, &header, &data, &len) == 1) {
        const unsigned char *p = data;
        if (strcmp(name, "CERTIFICATE") == 0 || strcmp(name, "X509 CERTIFICATE") == 0) {
            X509 *x = d2i_X509(NULL, &p, len);
            if (x != NULL) {
                if (info->ncerts++ == 0 && !have_csr)
                    describe_cert(x, info);
                X509_free(x);
            }
        } else if (strcmp(name, "CERTIFICATE REQUEST") == 0 ||
                   strcmp(name, "NEW CERTIFICATE REQUEST") == 0) {
            X509_REQ *r = d2i_X509_REQ(NULL, &p, len);
            if (r != NULL && !have_csr && info->ncerts == 0) {
                describe_csr(r, info);
                have_csr = true;
            }
            X509_REQ_free(r);
        } else if (strcmp(name, "ENCRYPTED PRIVATE KEY") == 0 ||
                   (strstr(name, "PRIVATE KEY") != NULL && strstr(header, "ENCRYPTED"))) {
            have_key = true;
            info->encrypted = true;
        } else if (strstr(name, "PRIVATE KEY") != NULL && !have_key) {
            /* Decode through the generic loader, which knows every key
             * format, from just this block. */
            BIO *kb = BIO_new(BIO_s_mem());
            EVP_PKEY *k = NULL;
            if (kb != NULL && PEM_write_bio(kb, name, header, data, len) > 0)
                k = PEM_read_bio_PrivateKey(kb, NULL, no_passphrase, NULL);
            if (k != NULL) {
                have_key = true;
                if (info->ncerts == 0)
                    key_type(k, info->key_type, sizeof info->key_type);
                EVP_PKEY_free(k);
            }
            BIO_free(kb);
        }
        OPENSSL_free(name);
        OPENSSL_free(header);
        OPENSSL_free(data);
        name = header = NULL;
        data = NULL;
    }
    ERR_clear_error();

    if (have_key)
        info->kind = PKI_KIND_KEY;
    else if (have_csr)
        info->kind = PKI_KIND_CSR;
    else if (info->ncerts == 1)
        info->kind = PKI_KIND_CERT;
    else if (info->ncerts > 1)
        info->kind = PKI_KIND_BUNDLE;
    else
        return pki_ssl_fail(
            why, why_len, XE_CORRUPT,
            "%s holds no PEM key, certificate or CSR (DER files: convert with "
            "openssl x509 -inform der)",
            label);
    return 0;
}

int pki_inspect(const char *path, struct pki_info *out, char *why, size_t why_len)
{
    memset(out, 0, sizeof *out);
    snprintf(out->file, sizeof out->file, "%s", path);
    BIO *b;
    int rc = read_file(path, &b, why, why_len);
    if (rc < 0)
        return rc;
    rc = describe(b, path, out, why, why_len);
    BIO_free(b);
    return rc;
}

static int cmp_info(const void *a, const void *b)
{
    return strcmp(((const struct pki_info *)a)->file, ((const struct pki_info *)b)->file);
}

int pki_list(const char *dir, struct pki_info **out, size_t *n, char *why, size_t why_len)
{
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return pki_ssl_fail(why, why_len, errno == ENOENT ? XE_NOTFOUND : XE_IO,
                            "cannot open directory %s: %s", dir, strerror(errno));
    struct pki_info *v = NULL;
    size_t cap = 0, len = 0;
    int rc = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[PATH_MAX];
        if (snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= (int)sizeof path)
            continue;
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > PKI_MAX_FILE)
            continue;
        struct pki_info info;
        if (pki_inspect(path, &info, NULL, 0) < 0)
            continue;
        snprintf(info.file, sizeof info.file, "%s", e->d_name);
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct pki_info *nv = realloc(v, ncap * sizeof *nv);
            if (nv == NULL) {
                rc =
                    pki_ssl_fail(why, why_len, XE_NOMEM, "out of memory listing %s", dir);
                goto err;
            }
            v = nv;
            cap = ncap;
        }
        v[len++] = info;
    }
    closedir(d);
    if (len > 1)
        qsort(v, len, sizeof *v, cmp_info);
    *out = v;
    *n = len;
    return 0;
err:
    closedir(d);
    free(v);
    return rc;
}

json_t *pki_info_json(const struct pki_info *i)
{
    json_t *o = json_pack("{s:s, s:s, s:b, s:s, s:i}", "file", i->file, "kind",
                          pki_kind_name(i->kind), "encrypted", i->encrypted, "key_type",
                          i->key_type, "certificates", i->ncerts);
    if (o == NULL)
        return NULL;
    if (i->kind == PKI_KIND_CERT || i->kind == PKI_KIND_BUNDLE ||
        i->kind == PKI_KIND_CSR || i->ncerts > 0) {
        json_t *sans = json_array();
        char tmp[sizeof i->sans];
        snprintf(tmp, sizeof tmp, "%s", i->sans);
        char *save = NULL;
        for (char *t = strtok_r(tmp, ", ", &save); t != NULL && sans != NULL;
             t = strtok_r(NULL, ", ", &save))
            json_array_append_new(sans, json_string(t));
        if (json_object_set_new(o, "subject", json_string(i->subject)) < 0 ||
            json_object_set_new(o, "sans", sans) < 0)
            goto err;
    }
    if (i->ncerts > 0) {
        if (json_object_set_new(o, "issuer", json_string(i->issuer)) < 0 ||
            json_object_set_new(o, "not_before", ctl_time(i->not_before)) < 0 ||
            json_object_set_new(o, "not_after", ctl_time(i->not_after)) < 0 ||
            json_object_set_new(o, "ca", json_boolean(i->is_ca)) < 0)
            goto err;
    }
    return o;
err:
    json_decref(o);
    return NULL;
}

/* ---- making keys and CSRs --------------------------------------------- */

static bool valid_ip(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

/* san_config builds the "DNS:a,IP:b" text OpenSSL's config parser takes,
 * after checking each entry (so no entry can smuggle a ',' or a section). */
static int san_config(const char *const *sans, size_t n, const char *cn, char *out,
                      size_t len, char *why, size_t why_len)
{
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const char *s = sans[i];
        const char *kind;
        if (strncmp(s, "DNS:", 4) == 0)
            kind = "DNS", s += 4;
        else if (strncmp(s, "IP:", 3) == 0)
            kind = "IP", s += 3;
        else
            kind = valid_ip(s) ? "IP" : "DNS";
        if (strcmp(kind, "IP") == 0 ? !valid_ip(s) : !jid_dns_name_valid(s, true))
            return pki_ssl_fail(
                why, why_len, XE_INVAL,
                "subjectAltName entry \"%s\" is not a %s; use DNS:<name> or "
                "IP:<address>",
                sans[i], strcmp(kind, "IP") == 0 ? "IP address" : "DNS name");
        size_t used = strlen(out);
        if (snprintf(out + used, len - used, "%s%s:%s", used ? "," : "", kind, s) >=
            (int)(len - used))
            return pki_ssl_fail(why, why_len, XE_LIMIT,
                                "too many subjectAltName entries");
    }
    if (n == 0 && jid_dns_name_valid(cn, true))
        snprintf(out, len, "DNS:%s", cn);
    return 0;
}

static int add_ext(STACK_OF(X509_EXTENSION) * exts, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, NULL, nid, value);
    if (e == NULL)
        return -1;
    if (!sk_X509_EXTENSION_push(exts, e)) {
        X509_EXTENSION_free(e);
        return -1;
    }
    return 0;
}

/* write_new writes the bytes of b to a new file (never an existing one),
 * with mode, and fsyncs it. */
static int write_new(const char *path, BIO *b, mode_t mode, char *why, size_t why_len)
{
    char *data;
    long n = BIO_get_mem_data(b, &data);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0)
        return pki_ssl_fail(why, why_len, errno == EEXIST ? XE_EXISTS : XE_IO,
                            errno == EEXIST
                                ? "%s already exists; choose another name or remove it"
                                : "cannot create %s: %s",
                            path, strerror(errno));
    /* umask may have narrowed mode; it may never have widened it. */
    bool ok = fchmod(fd, mode) == 0;
    for (long off = 0; ok && off < n;) {
        ssize_t w = write(fd, data + off, (size_t)(n - off));
        if (w < 0 && errno == EINTR)
            continue;
        ok = w > 0;
        off += w > 0 ? w : 0;
    }
    ok = ok && fsync(fd) == 0;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        unlink(path);
        return pki_ssl_fail(why, why_len, XE_IO, "cannot write %s: %s", path,
                            strerror(errno));
    }
    return 0;
}

int pki_csr(const char *basename, enum pki_keytype type, const char *cn,
            const char *const *sans, size_t n, char *why, size_t why_len)
{
    char keypath[PATH_MAX], csrpath[PATH_MAX], sanconf[2048];
    EVP_PKEY *key = NULL;
    X509_REQ *req = NULL;
    X509_NAME *name = NULL;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    BIO *kb = NULL, *rb = NULL;
    bool key_written = false;
    int rc;

    if (basename == NULL || basename[0] == '\0' ||
        snprintf(keypath, sizeof keypath, "%s.key", basename) >= (int)sizeof keypath ||
        snprintf(csrpath, sizeof csrpath, "%s.csr", basename) >= (int)sizeof csrpath)
        return pki_ssl_fail(why, why_len, XE_INVAL,
                            "a CSR needs a base name, e.g. pki csr node1");
    if (cn == NULL || cn[0] == '\0') {
        const char *slash = strrchr(basename, '/');
        cn = slash != NULL ? slash + 1 : basename;
    }
    if (strlen(cn) > 64) /* RFC 5280 ub-common-name */
        return pki_ssl_fail(why, why_len, XE_INVAL,
                            "CN \"%.70s...\" is over 64 characters", cn);
    rc = san_config(sans, n, cn, sanconf, sizeof sanconf, why, why_len);
    if (rc < 0)
        return rc;
    if (access(keypath, F_OK) == 0 || access(csrpath, F_OK) == 0)
        return pki_ssl_fail(why, why_len, XE_EXISTS,
                            "%s or %s already exists; choose another name or remove them",
                            keypath, csrpath);

    rc = XE_TLS;
    key = type == PKI_KEY_RSA_2048 ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
    if (key == NULL)
        goto ssl_err;
    req = X509_REQ_new();
    name = X509_NAME_new();
    exts = sk_X509_EXTENSION_new_null();
    if (req == NULL || name == NULL || exts == NULL)
        goto ssl_err;
    if (!X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
        !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn,
                                    -1, -1, 0) ||
        !X509_REQ_set_subject_name(req, name) || !X509_REQ_set_pubkey(req, key))
        goto ssl_err;
    if (add_ext(exts, NID_ext_key_usage, "serverAuth,clientAuth") < 0 ||
        (sanconf[0] && add_ext(exts, NID_subject_alt_name, sanconf) < 0) ||
        !X509_REQ_add_extensions(req, exts))
        goto ssl_err;
    if (X509_REQ_sign(req, key, EVP_sha256()) <= 0)
        goto ssl_err;

    kb = BIO_new(BIO_s_mem());
    rb = BIO_new(BIO_s_mem());
    if (kb == NULL || rb == NULL ||
        !PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) ||
        !PEM_write_bio_X509_REQ(rb, req))
        goto ssl_err;
    rc = write_new(keypath, kb, 0600, why, why_len);
    if (rc < 0)
        goto err;
    key_written = true;
    rc = write_new(csrpath, rb, 0644, why, why_len);
    if (rc < 0)
        goto err;
    rc = 0;
    goto out;

ssl_err:
    rc = pki_ssl_fail(why, why_len, XE_TLS, "cannot make the key or CSR: %s",
                      pki_ssl_reason(ERR_peek_error()));
err:
    if (key_written)
        unlink(keypath);
out:
    BIO_free(kb);
    BIO_free(rb);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    X509_NAME_free(name);
    X509_REQ_free(req);
    EVP_PKEY_free(key);
    return rc;
}

/* ---- checks ----------------------------------------------------------- */

/* load_certs returns every certificate in path (owned stack, at least one). */
static int load_certs(const char *path, STACK_OF(X509) * *out, char *why, size_t why_len)
{
    BIO *b;
    *out = NULL;
    int rc = read_file(path, &b, why, why_len);
    if (rc < 0)
        return rc;
    STACK_OF(X509) *st = sk_X509_new_null();
    X509 *x;
    while (st != NULL && (x = PEM_read_bio_X509(b, NULL, no_passphrase, NULL)) != NULL)
        if (!sk_X509_push(st, x))
            X509_free(x);
    BIO_free(b);
    if (st == NULL || sk_X509_num(st) == 0) {
        sk_X509_free(st);
        return pki_ssl_fail(why, why_len, XE_CORRUPT, "%s holds no PEM certificate",
                            path);
    }
    ERR_clear_error();
    *out = st;
    return 0;
}

static int load_key(const char *path, EVP_PKEY **out, char *why, size_t why_len)
{
    BIO *b;
    *out = NULL;
    mode_t mode = 0;
    int rc = read_file_ex(path, &b, &mode, why, why_len);
    if (rc < 0)
        return rc;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
    BIO_free(b);
    /* A private key others can read is no longer private: refuse to use it
     * (as sshd does with its host keys).  Checked once the file is known to
     * hold a key, so that a wrong file gets the message about its content. */
    if (k != NULL && (mode & (S_IRGRP | S_IROTH)) != 0) {
        EVP_PKEY_free(k);
        return pki_ssl_fail(
            why, why_len, XE_PERM,
            "key file %s is readable by group or others (mode %04o): chmod 600 %s", path,
            (unsigned)mode, path);
    }
    if (k == NULL) {
        struct pki_info info;
        bool enc = pki_inspect(path, &info, NULL, 0) == 0 && info.encrypted;
        return pki_ssl_fail(
            why, why_len, XE_CORRUPT,
            enc ? "%s is encrypted with a passphrase; decrypt it first: openssl pkey "
                  "-in <file> -out <new file>"
                : "%s holds no PEM private key",
            path);
    }
    ERR_clear_error();
    *out = k;
    return 0;
}

/* verify_chain checks certs (borrowed: the leaf first, then untrusted
 * intermediates) against the CA certificates in cas (borrowed) at now, for
 * TLS server use.  The paths only name the files in why. */
static int verify_chain(STACK_OF(X509) * certs, STACK_OF(X509) * cas,
                        const char *cert_path, const char *bundle_path, time_t now,
                        char *why, size_t why_len)
{
    X509_STORE *store = X509_STORE_new();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    int rc = XE_NOMEM;

    if (store == NULL || ctx == NULL)
        goto out;
    for (int i = 0; i < sk_X509_num(cas); i++)
        if (!X509_STORE_add_cert(store, sk_X509_value(cas, i)))
            goto out;
    if (!X509_STORE_CTX_init(ctx, store, sk_X509_value(certs, 0), certs))
        goto out;
    X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
    if (now != 0)
        X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), now);
    if (X509_verify_cert(ctx) == 1) {
        rc = 0;
    } else {
        int e = X509_STORE_CTX_get_error(ctx);
        rc = pki_ssl_fail(
            why, why_len, XE_AUTH,
            "%s does not verify against %s: %s; check that the bundle holds the CA "
            "that signed it",
            cert_path, bundle_path, X509_verify_cert_error_string(e));
    }
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    if (rc == XE_NOMEM)
        pki_ssl_fail(why, why_len, rc, "out of memory verifying %s", cert_path);
    ERR_clear_error();
    return rc;
}

int pki_verify(const char *cert_path, const char *bundle_path, time_t now, char *why,
               size_t why_len)
{
    STACK_OF(X509) *chain = NULL, *cas = NULL;
    int rc = load_certs(cert_path, &chain, why, why_len);

    if (rc == 0)
        rc = load_certs(bundle_path, &cas, why, why_len);
    if (rc == 0)
        rc = verify_chain(chain, cas, cert_path, bundle_path, now, why, why_len);
    sk_X509_pop_free(chain, X509_free);
    sk_X509_pop_free(cas, X509_free);
    return rc;
}

/* check_pair: the key k belongs to the first certificate of certs. */
static int check_pair(EVP_PKEY *k, STACK_OF(X509) * certs, const char *key_path,
                      const char *cert_path, char *why, size_t why_len)
{
    int rc = 0;

    if (X509_check_private_key(sk_X509_value(certs, 0), k) != 1)
        rc = pki_ssl_fail(
            why, why_len, XE_AUTH,
            "key %s does not belong to certificate %s; give the key the certificate "
            "was made for",
            key_path, cert_path);
    ERR_clear_error();
    return rc;
}

int pki_key_matches(const char *key_path, const char *cert_path, char *why,
                    size_t why_len)
{
    EVP_PKEY *k = NULL;
    STACK_OF(X509) *certs = NULL;
    int rc = load_key(key_path, &k, why, why_len);
    if (rc == 0)
        rc = load_certs(cert_path, &certs, why, why_len);
    if (rc == 0)
        rc = check_pair(k, certs, key_path, cert_path, why, why_len);
    EVP_PKEY_free(k);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

/* check_validity: x (borrowed) is valid at now (0: the current time). */
static int check_validity(X509 *x, const char *cert_path, time_t now, char *why,
                          size_t why_len)
{
    if (now == 0)
        now = time(NULL);
    time_t nb = asn1_time(X509_get0_notBefore(x));
    time_t na = asn1_time(X509_get0_notAfter(x));
    char when[32];
    struct tm tm;
    if (X509_cmp_time(X509_get0_notAfter(x), &now) < 0) {
        gmtime_r(&na, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        return pki_ssl_fail(
            why, why_len, XE_STATE,
            "certificate %s expired on %s; make a new one and set it with xmpp certs",
            cert_path, when);
    }
    if (X509_cmp_time(X509_get0_notBefore(x), &now) > 0) {
        gmtime_r(&nb, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S UTC", &tm);
        return pki_ssl_fail(
            why, why_len, XE_STATE,
            "certificate %s is not valid before %s; check this host's clock", cert_path,
            when);
    }
    return 0;
}

int pki_check_validity(const char *cert_path, time_t now, char *why, size_t why_len)
{
    STACK_OF(X509) *certs = NULL;
    int rc = load_certs(cert_path, &certs, why, why_len);
    if (rc < 0)
        return rc;
    rc = check_validity(sk_X509_value(certs, 0), cert_path, now, why, why_len);
    sk_X509_pop_free(certs, X509_free);
    return rc;
}

int pki_load_identity(const char *key_path, const char *cert_path,
                      const char *bundle_path, time_t now, EVP_PKEY **key,
                      STACK_OF(X509) * *certs, char *why, size_t why_len)
{
    EVP_PKEY *k = NULL;
    STACK_OF(X509) *c = NULL, *cas = NULL;
    int rc;

    *key = NULL;
    *certs = NULL;
    /* Each file is read once: what is checked is what the caller uses. */
    rc = load_key(key_path, &k, why, why_len);
    if (rc == 0)
        rc = load_certs(cert_path, &c, why, why_len);
    if (rc == 0)
        rc = check_pair(k, c, key_path, cert_path, why, why_len);
    if (rc == 0)
        rc = check_validity(sk_X509_value(c, 0), cert_path, now, why, why_len);
    if (rc == 0 && bundle_path != NULL) {
        rc = load_certs(bundle_path, &cas, why, why_len);
        if (rc == 0)
            rc = verify_chain(c, cas, cert_path, bundle_path, now, why, why_len);
        sk_X509_pop_free(cas, X509_free);
    }
    if (rc < 0) {
        EVP_PKEY_free(k);
        sk_X509_pop_free(c, X509_free);
        return rc;
    }
    *key = k;
    *certs = c;
    return 0;
}

int pki_check_certs(const char *key_path, const char *cert_path, const char *bundle_path,
                    time_t now, char *why, size_t why_len)
{
    EVP_PKEY *k;
    STACK_OF(X509) * c;
    int rc =
        pki_load_identity(key_path, cert_path, bundle_path, now, &k, &c, why, why_len);

    EVP_PKEY_free(k);
    sk_X509_pop_free(c, X509_free);
    return rc;
}

/* ---- control handlers ------------------------------------------------- */

int pki_path(const char *dir, const char *name, char *out, size_t len)
{
    if (name == NULL || !addr_pki_name_valid(name, strlen(name)))
        return XE_INVAL;
    if (snprintf(out, len, "%s/%s", dir, name) >= (int)len)
        return XE_INVAL;
    return 0;
}

/* arg_file reads args[key] as a file name in dir. */
static int arg_file(const char *dir, json_t *args, const char *key, char *out, size_t len,
                    struct ctl_error *err)
{
    const char *name = ctl_arg_str(args, key);
    if (name == NULL)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "\"%s\" (a file name) is required", key);
    if (pki_path(dir, name, out, len) < 0)
        return ctl_error_set(
            err, CTL_E_INVALID_ARGUMENT,
            "\"%.100s\" must be a file name in the pki directory (no '/', no "
            "leading '.')",
            name);
    return 0;
}

static int cmd_fail(int rc, const char *why, struct ctl_error *err)
{
    ctl_error_set(err, ctl_error_code_for(rc), "%s", why);
    return rc;
}

int pki_cmd_list(const char *pki_dir, json_t *args, json_t **result,
                 struct ctl_error *err)
{
    static const char *const keys[] = {NULL};
    char why[256];
    struct pki_info *v;
    size_t n;
    if (ctl_args_only(args, keys, err) < 0)
        return XE_INVAL;
    int rc = pki_list(pki_dir, &v, &n, why, sizeof why);
    if (rc < 0)
        return cmd_fail(rc, why, err);
    json_t *files = json_array();
    for (size_t i = 0; i < n && files != NULL; i++)
        if (json_array_append_new(files, pki_info_json(&v[i])) < 0) {
            json_decref(files);
            files = NULL;
        }
    free(v);
    if (files == NULL)
        return XE_NOMEM;
    *result = json_pack("{s:s, s:o}", "dir", pki_dir, "files", files);
    return *result != NULL ? 0 : XE_NOMEM;
}

int pki_cmd_inspect(const char *pki_dir, json_t *args, json_t **result,
                    struct ctl_error *err)
{
    static const char *const keys[] = {"file", NULL};
    char path[PATH_MAX], why[256];
    if (ctl_args_only(args, keys, err) < 0 ||
        arg_file(pki_dir, args, "file", path, sizeof path, err) < 0)
        return XE_INVAL;
    struct pki_info info;
    int rc = pki_inspect(path, &info, why, sizeof why);
    if (rc < 0)
        return cmd_fail(rc, why, err);
    snprintf(info.file, sizeof info.file, "%s", ctl_arg_str(args, "file"));
    *result = pki_info_json(&info);
    return *result != NULL ? 0 : XE_NOMEM;
}

int pki_cmd_csr(const char *pki_dir, json_t *args, json_t **result, struct ctl_error *err)
{
    static const char *const keys[] = {"basename", "cn", "key_type", "sans", NULL};
    char base[PATH_MAX - 8], why[256];
    if (ctl_args_only(args, keys, err) < 0 ||
        arg_file(pki_dir, args, "basename", base, sizeof base, err) < 0)
        return XE_INVAL;
    const char *cn = ctl_arg_str(args, "cn");
    const char *kt = ctl_arg_str(args, "key_type");
    enum pki_keytype type = PKI_KEY_EC_P256;
    if (kt != NULL && strcmp(kt, "rsa") == 0)
        type = PKI_KEY_RSA_2048;
    else if (kt != NULL && strcmp(kt, "ec") != 0)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "key_type \"%.32s\" is not \"ec\" or \"rsa\"", kt);
    json_t *jsans = json_object_get(args, "sans");
    if (jsans != NULL && !json_is_array(jsans))
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT, "\"sans\" must be a list");
    size_t n = json_array_size(jsans);
    if (n > 64)
        return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                             "at most 64 subjectAltName entries");
    const char *sans[64];
    for (size_t i = 0; i < n; i++) {
        sans[i] = json_string_value(json_array_get(jsans, i));
        if (sans[i] == NULL)
            return ctl_error_set(err, CTL_E_INVALID_ARGUMENT,
                                 "\"sans\" entries must be strings");
    }
    int rc = pki_csr(base, type, cn, sans, n, why, sizeof why);
    if (rc < 0)
        return cmd_fail(rc, why, err);
    const char *name = ctl_arg_str(args, "basename");
    char key[PATH_MAX], csr[PATH_MAX];
    snprintf(key, sizeof key, "%s.key", name);
    snprintf(csr, sizeof csr, "%s.csr", name);
    struct pki_info info;
    char csrpath[PATH_MAX];
    snprintf(csrpath, sizeof csrpath, "%s.csr", base);
    if (pki_inspect(csrpath, &info, NULL, 0) < 0)
        memset(&info, 0, sizeof info);
    json_t *ij = pki_info_json(&info);
    json_t *jout = ij != NULL ? json_object_get(ij, "sans") : NULL;
    /* "o" takes the reference: a borrowed array is increfed first, a fresh
     * empty one is handed over as it is. */
    jout = jout != NULL ? json_incref(jout) : json_array();
    *result = json_pack("{s:s, s:s, s:s, s:o}", "key", key, "csr", csr, "subject",
                        info.subject, "sans", jout);
    json_decref(ij);
    return *result != NULL ? 0 : XE_NOMEM;
}

int pki_cmd_verify(const char *pki_dir, json_t *args, json_t **result,
                   struct ctl_error *err)
{
    static const char *const keys[] = {"cert", "bundle", NULL};
    char cert[PATH_MAX], bundle[PATH_MAX], why[256];
    if (ctl_args_only(args, keys, err) < 0 ||
        arg_file(pki_dir, args, "cert", cert, sizeof cert, err) < 0 ||
        arg_file(pki_dir, args, "bundle", bundle, sizeof bundle, err) < 0)
        return XE_INVAL;
    int rc = pki_verify(cert, bundle, 0, why, sizeof why);
    if (rc == XE_AUTH) {
        ctl_error_set(err, "verify-failed", "%s", why);
        return rc;
    }
    if (rc < 0)
        return cmd_fail(rc, why, err);
    *result = json_pack("{s:s, s:s, s:b}", "cert", ctl_arg_str(args, "cert"), "bundle",
                        ctl_arg_str(args, "bundle"), "verified", 1);
    return *result != NULL ? 0 : XE_NOMEM;
}

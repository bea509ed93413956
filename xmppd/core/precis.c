/* precis.c: PRECIS profiles (RFC 8264, RFC 8265) with ICU and IDNA2008
 * domainparts with libidn2, for XMPP addresses (RFC 7622 §3). */
#include "precis.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <idn2.h>
#include <sodium.h>
#include <unicode/uchar.h>
#include <unicode/unorm2.h>
#include <unicode/uscript.h>
#include <unicode/ustring.h>
#include <unicode/utf16.h>

#include "err.h"
#include "jid.h"

#define PRECIS_DOMAIN_MAX 1023 /* RFC 7622 §3.2 */
#define PRECIS_LABEL_MAX 63    /* RFC 1035 §2.3.4, RFC 5890 §2.3.2.1 */

/* A UTF-16 string (owned). */
struct pr_str {
    UChar *s;
    int32_t len;
    size_t cap; /* UChars allocated (wiped on release) */
};

/* pr_free wipes and frees p: a password passes through these buffers
 * (precis_opaque before scram_derive). */
static void pr_free(struct pr_str *p)
{
    if (p->s != NULL)
        sodium_memzero(p->s, p->cap * sizeof(UChar));
    free(p->s);
    p->s = NULL;
    p->len = 0;
    p->cap = 0;
}

/* pr_from_utf8 converts in[0..len) (valid UTF-8 without NUL, else XE_INVAL). */
static int pr_from_utf8(const char *in, size_t len, struct pr_str *o)
{
    UErrorCode e = U_ZERO_ERROR;
    int32_t need = 0;

    if (len > PRECIS_IN_MAX)
        return XE_LIMIT;
    if (memchr(in, '\0', len) != NULL)
        return XE_INVAL;
    u_strFromUTF8(NULL, 0, &need, in, (int32_t)len, &e);
    if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e))
        return XE_INVAL; /* U_INVALID_CHAR_FOUND: not UTF-8 */
    o->s = malloc(((size_t)need + 1) * sizeof(UChar));
    if (o->s == NULL)
        return XE_NOMEM;
    o->cap = (size_t)need + 1;
    e = U_ZERO_ERROR;
    u_strFromUTF8(o->s, need + 1, &o->len, in, (int32_t)len, &e);
    if (U_FAILURE(e)) {
        pr_free(o);
        return XE_INVAL;
    }
    return 0;
}

/* pr_to_utf8 writes p as NUL-terminated UTF-8 into out (cap bytes). */
static int pr_to_utf8(const struct pr_str *p, char *out, size_t cap)
{
    UErrorCode e = U_ZERO_ERROR;
    int32_t need = 0;

    u_strToUTF8(NULL, 0, &need, p->s, p->len, &e);
    if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e))
        return XE_INVAL;
    if ((size_t)need + 1 > cap)
        return XE_LIMIT;
    e = U_ZERO_ERROR;
    u_strToUTF8(out, (int32_t)cap, &need, p->s, p->len, &e);
    return U_FAILURE(e) ? XE_INVAL : 0;
}

/* pr_lower replaces p by toLowerCase(p) (Unicode default case conversion,
 * root locale: RFC 8265 §3.3.1 case mapping rule). */
static int pr_lower(struct pr_str *p)
{
    UErrorCode e = U_ZERO_ERROR;
    struct pr_str o = {0};
    int32_t need = u_strToLower(NULL, 0, p->s, p->len, "", &e);

    if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e))
        return XE_INVAL;
    o.s = malloc(((size_t)need + 1) * sizeof(UChar));
    if (o.s == NULL)
        return XE_NOMEM;
    o.cap = (size_t)need + 1;
    e = U_ZERO_ERROR;
    o.len = u_strToLower(o.s, need + 1, p->s, p->len, "", &e);
    if (U_FAILURE(e)) {
        pr_free(&o);
        return XE_INVAL;
    }
    pr_free(p);
    *p = o;
    return 0;
}

/* pr_nfc replaces p by its Normalization Form C (RFC 8264 §5.2.5). */
static int pr_nfc(struct pr_str *p)
{
    UErrorCode e = U_ZERO_ERROR;
    const UNormalizer2 *nfc = unorm2_getNFCInstance(&e);
    struct pr_str o = {0};
    int32_t need;

    if (U_FAILURE(e))
        return XE_NOMEM;
    need = unorm2_normalize(nfc, p->s, p->len, NULL, 0, &e);
    if (e != U_BUFFER_OVERFLOW_ERROR && U_FAILURE(e))
        return XE_INVAL;
    o.s = malloc(((size_t)need + 1) * sizeof(UChar));
    if (o.s == NULL)
        return XE_NOMEM;
    o.cap = (size_t)need + 1;
    e = U_ZERO_ERROR;
    o.len = unorm2_normalize(nfc, p->s, p->len, o.s, need + 1, &e);
    if (U_FAILURE(e)) {
        pr_free(&o);
        return XE_INVAL;
    }
    pr_free(p);
    *p = o;
    return 0;
}

/* pr_map rewrites p code point by code point: width mapping (RFC 8265
 * §3.3.1: fullwidth and halfwidth characters to their decomposition
 * mapping) or, with spaces, non-ASCII spaces to U+0020 (RFC 8265 §4.2.1). */
static int pr_map(struct pr_str *p, bool width, bool spaces)
{
    UErrorCode e = U_ZERO_ERROR;
    const UNormalizer2 *nfkc = unorm2_getNFKCInstance(&e);
    struct pr_str o = {0};
    int32_t i = 0;

    if (U_FAILURE(e))
        return XE_NOMEM;
    /* A wide or narrow decomposition is one code point (two units at most);
     * keep room for more all the same. */
    o.s = malloc(((size_t)p->len * 4 + 1) * sizeof(UChar));
    if (o.s == NULL)
        return XE_NOMEM;
    o.cap = (size_t)p->len * 4 + 1;
    while (i < p->len) {
        UChar32 c;
        int32_t dt;

        U16_NEXT(p->s, i, p->len, c);
        dt = u_getIntPropertyValue(c, UCHAR_DECOMPOSITION_TYPE);
        if (width && (dt == U_DT_WIDE || dt == U_DT_NARROW)) {
            UChar d[8];
            int32_t n;

            e = U_ZERO_ERROR;
            n = unorm2_getRawDecomposition(nfkc, c, d, 8, &e);
            if (U_SUCCESS(e) && n > 0 && n <= 4) {
                memcpy(o.s + o.len, d, (size_t)n * sizeof(UChar));
                o.len += n;
                continue;
            }
        }
        if (spaces && c > 0x7f && u_charType(c) == U_SPACE_SEPARATOR)
            c = 0x20;
        U16_APPEND_UNSAFE(o.s, o.len, c);
    }
    pr_free(p);
    *p = o;
    return 0;
}

enum pr_prop {
    PR_PVALID,
    PR_CONTEXTJ,
    PR_CONTEXTO,
    PR_DISALLOWED,
};

/* pr_has_compat: toNFKC(cp) != cp (RFC 8264 §9.14). */
static bool pr_has_compat(UChar32 c)
{
    UErrorCode e = U_ZERO_ERROR;
    const UNormalizer2 *nfkc = unorm2_getNFKCInstance(&e);
    UChar s[2];
    int32_t n = 0;
    UBool ok;

    U16_APPEND_UNSAFE(s, n, c);
    ok = unorm2_isNormalized(nfkc, s, n, &e);
    return U_FAILURE(e) || !ok;
}

/* pr_property derives the PRECIS property of c in the IdentifierClass
 * (identifier) or the FreeformClass, in the order of RFC 8264 §8. */
static enum pr_prop pr_property(UChar32 c, bool identifier)
{
    enum pr_prop id_dis = identifier ? PR_DISALLOWED : PR_PVALID;
    int8_t cat;
    int32_t hst;

    /* §9.6 Exceptions (RFC 5892 §2.6). */
    switch (c) {
    case 0x00df:
    case 0x03c2:
    case 0x06fd:
    case 0x06fe:
    case 0x0f0b:
    case 0x3007:
        return PR_PVALID;
    case 0x00b7:
    case 0x0375:
    case 0x05f3:
    case 0x05f4:
    case 0x30fb:
        return PR_CONTEXTO;
    case 0x0640:
    case 0x07fa:
    case 0x302e:
    case 0x302f:
    case 0x3031:
    case 0x3032:
    case 0x3033:
    case 0x3034:
    case 0x3035:
    case 0x303b:
        return PR_DISALLOWED;
    default:
        break;
    }
    if ((c >= 0x0660 && c <= 0x0669) || (c >= 0x06f0 && c <= 0x06f9))
        return PR_CONTEXTO;
    /* §9.7 BackwardCompatible is empty.  §9.10 Unassigned. */
    cat = u_charType(c);
    if (cat == U_UNASSIGNED && !u_hasBinaryProperty(c, UCHAR_NONCHARACTER_CODE_POINT))
        return PR_DISALLOWED;
    if (c >= 0x21 && c <= 0x7e) /* §9.11 ASCII7 */
        return PR_PVALID;
    if (c == 0x200c || c == 0x200d) /* §9.8 JoinControl */
        return PR_CONTEXTJ;
    hst = u_getIntPropertyValue(c, UCHAR_HANGUL_SYLLABLE_TYPE); /* §9.9 */
    if (hst == U_HST_LEADING_JAMO || hst == U_HST_VOWEL_JAMO ||
        hst == U_HST_TRAILING_JAMO)
        return PR_DISALLOWED;
    if (u_hasBinaryProperty(c, UCHAR_DEFAULT_IGNORABLE_CODE_POINT) || /* §9.13 */
        u_hasBinaryProperty(c, UCHAR_NONCHARACTER_CODE_POINT))
        return PR_DISALLOWED;
    if (cat == U_CONTROL_CHAR) /* §9.12 */
        return PR_DISALLOWED;
    if (pr_has_compat(c)) /* §9.14 */
        return id_dis;
    switch (cat) {
    case U_LOWERCASE_LETTER: /* §9.1 LetterDigits */
    case U_UPPERCASE_LETTER:
    case U_OTHER_LETTER:
    case U_DECIMAL_DIGIT_NUMBER:
    case U_MODIFIER_LETTER:
    case U_NON_SPACING_MARK:
    case U_COMBINING_SPACING_MARK:
        return PR_PVALID;
    case U_TITLECASE_LETTER: /* §9.2 OtherLetterDigits */
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
    case U_ENCLOSING_MARK:
    case U_SPACE_SEPARATOR: /* §9.3 Spaces */
    case U_MATH_SYMBOL:     /* §9.4 Symbols */
    case U_CURRENCY_SYMBOL:
    case U_MODIFIER_SYMBOL:
    case U_OTHER_SYMBOL:
    case U_CONNECTOR_PUNCTUATION: /* §9.5 Punctuation */
    case U_DASH_PUNCTUATION:
    case U_START_PUNCTUATION:
    case U_END_PUNCTUATION:
    case U_INITIAL_PUNCTUATION:
    case U_FINAL_PUNCTUATION:
    case U_OTHER_PUNCTUATION:
        return id_dis;
    default:
        return PR_DISALLOWED;
    }
}

static int32_t pr_jt(UChar32 c)
{
    return u_getIntPropertyValue(c, UCHAR_JOINING_TYPE);
}

/* pr_context applies the contextual rule of cp[i] (RFC 5892 Appendix A,
 * referenced by RFC 8264 §9.8 and §9.6). */
static bool pr_context(const UChar32 *cp, int32_t n, int32_t i)
{
    UChar32 c = cp[i];
    bool virama_before = i > 0 && u_getCombiningClass(cp[i - 1]) == 9;
    int32_t j;

    switch (c) {
    case 0x200c: /* A.1 ZERO WIDTH NON-JOINER */
        if (virama_before)
            return true;
        for (j = i - 1; j >= 0 && pr_jt(cp[j]) == U_JT_TRANSPARENT; j--)
            ;
        if (j < 0 ||
            (pr_jt(cp[j]) != U_JT_LEFT_JOINING && pr_jt(cp[j]) != U_JT_DUAL_JOINING))
            return false;
        for (j = i + 1; j < n && pr_jt(cp[j]) == U_JT_TRANSPARENT; j++)
            ;
        return j < n &&
               (pr_jt(cp[j]) == U_JT_RIGHT_JOINING || pr_jt(cp[j]) == U_JT_DUAL_JOINING);
    case 0x200d: /* A.2 ZERO WIDTH JOINER */
        return virama_before;
    case 0x00b7: /* A.3 MIDDLE DOT: between two 'l' */
        return i > 0 && i + 1 < n && cp[i - 1] == 0x6c && cp[i + 1] == 0x6c;
    case 0x0375: /* A.4 GREEK LOWER NUMERAL SIGN: before Greek */
        return i + 1 < n &&
               uscript_getScript(cp[i + 1], &(UErrorCode){U_ZERO_ERROR}) == USCRIPT_GREEK;
    case 0x05f3: /* A.5, A.6 HEBREW GERESH, GERSHAYIM: after Hebrew */
    case 0x05f4:
        return i > 0 && uscript_getScript(cp[i - 1], &(UErrorCode){U_ZERO_ERROR}) ==
                            USCRIPT_HEBREW;
    case 0x30fb: /* A.7 KATAKANA MIDDLE DOT: with Hiragana, Katakana or Han */
        for (j = 0; j < n; j++) {
            UScriptCode sc = uscript_getScript(cp[j], &(UErrorCode){U_ZERO_ERROR});

            if (sc == USCRIPT_HIRAGANA || sc == USCRIPT_KATAKANA || sc == USCRIPT_HAN)
                return true;
        }
        return false;
    default:
        break;
    }
    /* A.8, A.9: Arabic-Indic digits and extended ones do not mix. */
    for (j = 0; j < n; j++) {
        if (c <= 0x0669 && cp[j] >= 0x06f0 && cp[j] <= 0x06f9)
            return false;
        if (c >= 0x06f0 && cp[j] >= 0x0660 && cp[j] <= 0x0669)
            return false;
    }
    return true;
}

/* pr_bidi_rule applies RFC 5893 §2 to a string that holds a right-to-left
 * character (R, AL or AN); any other string passes. */
static bool pr_bidi_rule(const UChar32 *cp, int32_t n)
{
    bool rtl = false, en = false, an = false;
    int32_t last;
    UCharDirection d0;

    for (int32_t i = 0; i < n; i++) {
        UCharDirection d = u_charDirection(cp[i]);

        rtl = rtl || d == U_RIGHT_TO_LEFT || d == U_RIGHT_TO_LEFT_ARABIC ||
              d == U_ARABIC_NUMBER;
    }
    if (!rtl || n == 0)
        return true;
    d0 = u_charDirection(cp[0]);
    if (d0 != U_LEFT_TO_RIGHT && d0 != U_RIGHT_TO_LEFT && d0 != U_RIGHT_TO_LEFT_ARABIC)
        return false; /* rule 1 */
    rtl = d0 != U_LEFT_TO_RIGHT;
    for (int32_t i = 0; i < n; i++) {
        UCharDirection d = u_charDirection(cp[i]);
        bool common = d == U_EUROPEAN_NUMBER || d == U_EUROPEAN_NUMBER_SEPARATOR ||
                      d == U_COMMON_NUMBER_SEPARATOR ||
                      d == U_EUROPEAN_NUMBER_TERMINATOR || d == U_OTHER_NEUTRAL ||
                      d == U_BOUNDARY_NEUTRAL || d == U_DIR_NON_SPACING_MARK;

        en = en || d == U_EUROPEAN_NUMBER;
        an = an || d == U_ARABIC_NUMBER;
        if (rtl && !common && d != U_RIGHT_TO_LEFT && d != U_RIGHT_TO_LEFT_ARABIC &&
            d != U_ARABIC_NUMBER)
            return false; /* rule 2 */
        if (!rtl && !common && d != U_LEFT_TO_RIGHT)
            return false; /* rule 5 */
    }
    if (rtl && en && an)
        return false; /* rule 4 */
    for (last = n - 1; last > 0 && u_charDirection(cp[last]) == U_DIR_NON_SPACING_MARK;
         last--)
        ;
    d0 = u_charDirection(cp[last]);
    if (rtl)
        return d0 == U_RIGHT_TO_LEFT || d0 == U_RIGHT_TO_LEFT_ARABIC ||
               d0 == U_EUROPEAN_NUMBER || d0 == U_ARABIC_NUMBER; /* rule 3 */
    return d0 == U_LEFT_TO_RIGHT || d0 == U_EUROPEAN_NUMBER;     /* rule 6 */
}

/* pr_check checks the prepared p against its string class (RFC 8264 §4),
 * the contextual rules and, when bidi, the Bidi Rule.  XE_INVAL if not. */
static int pr_check(const struct pr_str *p, bool identifier, bool bidi)
{
    UErrorCode e = U_ZERO_ERROR;
    UChar32 *cp;
    int32_t n = 0;
    int rc = 0;

    if (p->len == 0)
        return XE_INVAL; /* RFC 8265 §3.3.3 and §4.2.3: empty is refused */
    cp = malloc(((size_t)p->len + 1) * sizeof *cp);
    if (cp == NULL)
        return XE_NOMEM;
    u_strToUTF32(cp, p->len + 1, &n, p->s, p->len, &e);
    if (U_FAILURE(e))
        rc = XE_INVAL; /* an unpaired surrogate */
    for (int32_t i = 0; i < n && rc == 0; i++) {
        enum pr_prop v = pr_property(cp[i], identifier);

        if (v == PR_DISALLOWED ||
            ((v == PR_CONTEXTJ || v == PR_CONTEXTO) && !pr_context(cp, n, i)))
            rc = XE_INVAL;
    }
    if (rc == 0 && bidi && !pr_bidi_rule(cp, n))
        rc = XE_INVAL;
    sodium_memzero(cp, ((size_t)p->len + 1) * sizeof *cp);
    free(cp);
    return rc;
}

/* pr_done: refused inputs leave "" in out. */
static int pr_done(int rc, char *out, size_t cap)
{
    if (rc != 0 && cap > 0)
        out[0] = '\0';
    return rc;
}

/* pr_ascii prepares a string of printable ASCII (0x20..0x7e) without ICU,
 * for speed (every stanza's addresses go through here): ASCII7 is PVALID in
 * both classes (RFC 8264 §9.11), the space is FreeformClass only, no
 * contextual or Bidi rule concerns ASCII, NFC and width mapping change
 * nothing, and toLowerCase is the ASCII one.  Returns 1 when in is not such
 * a string (the caller takes the ICU path), else 0 or an error. */
static int pr_ascii(const char *in, size_t len, bool username, char *out, size_t cap)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)in[i] < 0x20 || (unsigned char)in[i] > 0x7e)
            return 1;
    if (len == 0)
        return XE_INVAL;
    for (size_t i = 0; username && i < len; i++)
        if (in[i] == ' ' || strchr("\"&'/:<>@", in[i]) != NULL)
            return XE_INVAL; /* not IdentifierClass; RFC 7622 §3.3.1 */
    if (len + 1 > cap)
        return XE_LIMIT;
    for (size_t i = 0; i < len; i++)
        out[i] =
            username && in[i] >= 'A' && in[i] <= 'Z' ? (char)(in[i] - 'A' + 'a') : in[i];
    out[len] = '\0';
    return 0;
}

int precis_username(const char *in, size_t len, char *out, size_t cap)
{
    struct pr_str p = {0};
    int rc = pr_ascii(in, len, true, out, cap);

    if (rc <= 0)
        return pr_done(rc, out, cap);

    /* RFC 8265 §3.3.3: width mapping, (no additional mapping), case
     * mapping, normalization, directionality; then the class. */
    if ((rc = pr_from_utf8(in, len, &p)) < 0 || (rc = pr_map(&p, true, false)) < 0 ||
        (rc = pr_lower(&p)) < 0 || (rc = pr_nfc(&p)) < 0 ||
        (rc = pr_check(&p, true, true)) < 0)
        goto out;
    /* RFC 7622 §3.3.1: not in a localpart, though IdentifierClass has them. */
    for (int32_t i = 0; i < p.len; i++) {
        if (p.s[i] < 0x80 && strchr("\"&'/:<>@", (int)p.s[i]) != NULL) {
            rc = XE_INVAL;
            goto out;
        }
    }
    rc = pr_to_utf8(&p, out, cap);
out:
    pr_free(&p);
    return pr_done(rc, out, cap);
}

int precis_opaque(const char *in, size_t len, char *out, size_t cap)
{
    struct pr_str p = {0};
    int rc = pr_ascii(in, len, false, out, cap);

    if (rc <= 0)
        return pr_done(rc, out, cap);

    /* RFC 8265 §4.2.3: additional mapping (spaces), normalization. */
    if ((rc = pr_from_utf8(in, len, &p)) < 0 || (rc = pr_map(&p, false, true)) < 0 ||
        (rc = pr_nfc(&p)) < 0 || (rc = pr_check(&p, false, false)) < 0)
        goto out;
    rc = pr_to_utf8(&p, out, cap);
out:
    pr_free(&p);
    return pr_done(rc, out, cap);
}

/* pr_labels_ok: no label of d starts or ends with '-', every ASCII label
 * is LDH (RFC 1123 §2.1), and every label is 1..63 octets once in A-label
 * form (ace). */
static bool pr_labels_ok(const char *d, const char *ace)
{
    const char *l = d;

    for (const char *a = ace;;) {
        size_t n = strcspn(a, ".");

        if (n == 0 || n > PRECIS_LABEL_MAX)
            return false;
        if (a[n] == '\0')
            break;
        a += n + 1;
    }
    for (;;) {
        size_t n = strcspn(l, ".");
        bool ascii = true;

        /* RFC 5891 §4.2.3.1: no hyphen at either end, U-labels too. */
        if (n == 0 || l[0] == '-' || l[n - 1] == '-')
            return false;
        for (size_t i = 0; i < n; i++)
            ascii = ascii && (unsigned char)l[i] < 0x80;
        if (ascii) {
            for (size_t i = 0; i < n; i++)
                if (!((l[i] >= 'a' && l[i] <= 'z') || (l[i] >= '0' && l[i] <= '9') ||
                      l[i] == '-'))
                    return false;
        }
        if (l[n] == '\0')
            return true;
        l += n + 1;
    }
}

/* pr_idna prepares a name that is not plain LDH ASCII with libidn2: to
 * A-labels (strict IDNA2008 first, UTS #46 non-transitional mapping only if
 * needed), back to U-labels, and again to A-labels, which must agree. */
static int pr_idna(const char *d, char *out, size_t cap)
{
    char *ace = NULL, *u = NULL, *ace2 = NULL;
    int rc = XE_INVAL;

    if (idn2_to_ascii_8z(d, &ace, IDN2_NFC_INPUT | IDN2_NO_TR46) != IDN2_OK) {
        free(ace);
        ace = NULL;
        if (idn2_to_ascii_8z(d, &ace, IDN2_NFC_INPUT | IDN2_NONTRANSITIONAL) != IDN2_OK)
            goto out;
    }
    for (char *p = ace; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    if (idn2_to_unicode_8z8z(ace, &u, 0) != IDN2_OK ||
        idn2_to_ascii_8z(u, &ace2, IDN2_NO_TR46) != IDN2_OK || strcmp(ace, ace2) != 0 ||
        !pr_labels_ok(u, ace))
        goto out;
    rc = XE_LIMIT;
    if (strlen(u) > PRECIS_DOMAIN_MAX || strlen(u) + 1 > cap)
        goto out;
    memcpy(out, u, strlen(u) + 1);
    rc = 0;
out:
    free(ace);
    free(u);
    free(ace2);
    return rc;
}

int precis_domain(const char *in, char *out, size_t cap)
{
    static const char *const seps[] = {"\xe3\x80\x82", "\xef\xbc\x8e", "\xef\xbd\xa1"};
    size_t len, n = 0;
    bool ascii = true, ace = false;
    char small[256]; /* most domains: no malloc on the stanza path */
    char *d;
    int rc;

    if (in == NULL)
        return pr_done(XE_INVAL, out, cap);
    len = strlen(in);
    if (len > PRECIS_IN_MAX)
        return pr_done(XE_LIMIT, out, cap);
    d = len < sizeof small ? small : malloc(len + 1);
    if (d == NULL)
        return pr_done(XE_NOMEM, out, cap);
    /* RFC 7622 §3.2: the ideographic and fullwidth full stops separate
     * labels too; ASCII is lower-cased. */
    for (size_t i = 0; i < len;) {
        bool sep = false;

        /* (every separator starts with 0xe3 or 0xef: test that first, this
         * runs for every byte of every domain the server parses) */
        for (size_t k = 0; k < 3 && !sep && (unsigned char)in[i] >= 0xe3; k++) {
            if (strncmp(in + i, seps[k], 3) == 0) {
                d[n++] = '.';
                i += 3;
                sep = true;
            }
        }
        if (sep)
            continue;
        d[n] = (in[i] >= 'A' && in[i] <= 'Z') ? (char)(in[i] - 'A' + 'a') : in[i];
        ascii = ascii && (unsigned char)d[n] < 0x80;
        n++;
        i++;
    }
    /* One trailing dot is removed (RFC 7622 §3.2). */
    if (n > 0 && d[n - 1] == '.')
        n--;
    d[n] = '\0';
    for (size_t i = 0; ascii && i + 4 <= n; i++)
        ace = ace || (d[i] == 'x' && (i == 0 || d[i - 1] == '.') &&
                      memcmp(d + i, "xn--", 4) == 0);
    if (n == 0) {
        rc = XE_INVAL;
    } else if (ascii && (!ace || d[0] == '[')) {
        /* LDH labels or an IP literal: jid_domain_valid knows those. */
        rc = XE_INVAL;
        if (jid_domain_valid(d))
            rc = n + 1 > cap ? XE_LIMIT : 0;
        if (rc == 0)
            memcpy(out, d, n + 1);
    } else {
        bool out_ascii = true;

        rc = pr_idna(d, out, cap);
        /* UTS #46 mapping may give plain ASCII (fullwidth letters): that
         * must then be a valid LDH name (checked without IDNA, so that
         * jid_domain_valid, which calls back here, does not recurse). */
        for (const char *p = out; rc == 0 && *p; p++)
            out_ascii = out_ascii && (unsigned char)*p < 0x80;
        if (rc == 0 && out_ascii && !jid_domain_valid(out))
            rc = XE_INVAL;
    }
    if (d != small)
        free(d);
    return pr_done(rc, out, cap);
}

/* pixstats: pixel statistics of the night's reduced frames, with cfitsio.
 *
 * For each file in $DOWNLINK_DATA/reduced/<night>/ (DOWNLINK_DATA defaults to /data): N, mean,
 * standard deviation, min, max and median of the first image HDU, read as float, NaN (and
 * BLANK) pixels ignored. Written to $DOWNLINK_DATA/products/<night>/pixstats/pixstats.csv.
 * Exit codes: 0 done; 1 a file could not be read (file and cfitsio's message on stderr; the
 * other files are still measured and written) or the night is missing; 2 bad usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fitsio.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PROG "pixstats"

static const char *usage_text =
    "usage: " PROG " --night YYYY-MM-DD\n"
    "\n"
    "Pixel statistics of every frame in $DOWNLINK_DATA/reduced/<night>/ (DOWNLINK_DATA\n"
    "defaults to /data), from the first HDU with image pixels (the primary array, else the\n"
    "first image extension; tile-compressed images too), read as float. NaN and BLANK pixels\n"
    "are left out. Writes $DOWNLINK_DATA/products/<night>/pixstats/pixstats.csv:\n"
    "  file,hdu,naxis1,naxis2,n,mean,stddev,min,max,median\n"
    "hdu counts from 0; stddev is the population standard deviation (numpy's default);\n"
    "the median of an even count is the mean of the two middle values. A frame with no\n"
    "valid pixel has n = 0 and nan for the rest.\n"
    "\n"
    "Exit codes: 0 done; 1 failure (a frame cfitsio cannot read is named on stderr with\n"
    "cfitsio's message, and the others are still written; or the night is missing);\n"
    "2 bad usage.\n";

struct stats {
    long n;
    double mean, stddev, min, max, median;
};

static int bad_usage(const char *why, const char *arg)
{
    fprintf(stderr, PROG ": ");
    fprintf(stderr, why, arg);
    fprintf(stderr, "\nusage: " PROG " --night YYYY-MM-DD (see --help)\n");
    return 2;
}

/* YYYY-MM-DD and a real day of the calendar (mktime normalises 2026-02-30 to March). */
static int valid_night(const char *s)
{
    int y, m, d, used = 0;
    if (strlen(s) != 10 || sscanf(s, "%4d-%2d-%2d%n", &y, &m, &d, &used) != 3 || used != 10)
        return 0;
    for (int i = 0; i < 10; i++)
        if (i == 4 || i == 7 ? s[i] != '-' : (s[i] < '0' || s[i] > '9'))
            return 0;
    struct tm t = {.tm_year = y - 1900, .tm_mon = m - 1, .tm_mday = d, .tm_hour = 12};
    if (timegm(&t) == (time_t)-1)
        return 0;
    return t.tm_year == y - 1900 && t.tm_mon == m - 1 && t.tm_mday == d;
}

/* cfitsio keeps a stack of messages; print them all, each prefixed with the file. A message
 * may quote the bytes of a broken header: one with unprintable bytes is left out. */
static void report_cfitsio(const char *path, int status)
{
    char text[FLEN_STATUS], msg[FLEN_ERRMSG];
    fits_get_errstatus(status, text);
    fprintf(stderr, PROG ": error: %s: cfitsio status %d: %s\n", path, status, text);
    while (fits_read_errmsg(msg)) {
        int printable = 1;
        for (const char *c = msg; *c; c++)
            printable &= *c >= ' ' && *c <= '~';
        if (printable)
            fprintf(stderr, PROG ": error: %s: %s\n", path, msg);
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* Statistics of the valid (non-NaN) values among pix[0..npix); pix is reordered. */
static struct stats compute(float *pix, long npix)
{
    struct stats s = {0, NAN, NAN, NAN, NAN, NAN};
    long n = 0;
    for (long i = 0; i < npix; i++)
        if (!isnan(pix[i]))
            pix[n++] = pix[i];
    s.n = n;
    if (n == 0)
        return s;
    /* Two passes in double: the one-pass formula loses digits when the mean is large. */
    double sum = 0, sq = 0;
    for (long i = 0; i < n; i++)
        sum += pix[i];
    s.mean = sum / n;
    for (long i = 0; i < n; i++)
        sq += (pix[i] - s.mean) * (pix[i] - s.mean);
    s.stddev = sqrt(sq / n);
    qsort(pix, (size_t)n, sizeof *pix, cmp_float);
    s.min = pix[0];
    s.max = pix[n - 1];
    s.median = n % 2 ? pix[n / 2] : ((double)pix[n / 2 - 1] + pix[n / 2]) / 2;
    return s;
}

/* Move to the first HDU with image pixels (tile-compressed images count as images). Not
 * fits_open_image: it takes a primary array with NAXIS = 2 but zero-length axes (LCO's raw
 * MEFs) for an image. Returns the status; BAD_NAXIS when the file holds no image. */
static int first_image(fitsfile *f, int *naxis, long naxes[9], long *npix)
{
    int status = 0, type;
    for (int hdu = 1; status == 0; hdu++) {
        /* fits_get_hdu_type, not movabs's answer: it calls a tile-compressed image an image. */
        if (fits_movabs_hdu(f, hdu, NULL, &status) || fits_get_hdu_type(f, &type, &status))
            break;
        if (type != IMAGE_HDU || fits_get_img_dim(f, naxis, &status) || *naxis < 1 || *naxis > 9)
            continue;
        fits_get_img_size(f, 9, naxes, &status);
        *npix = 1;
        for (int i = 0; i < *naxis; i++)
            *npix *= naxes[i];
        if (status == 0 && *npix > 0)
            return 0;
    }
    if (status == END_OF_FILE) { /* ran out of HDUs: no image, not a cfitsio error */
        fits_clear_errmsg();
        return BAD_NAXIS;
    }
    return status;
}

/* One CSV row for one frame; 0, or the status of the failure (already reported). */
static int measure(const char *path, const char *name, FILE *out)
{
    fitsfile *f = NULL;
    int status = 0, naxis = 0, hdu = 0, anynul = 0;
    long naxes[9] = {0}, npix = 0, first[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    float nulval = NAN, *pix = NULL;

    /* diskfile: the name is taken literally, not as cfitsio's extended syntax (file[1]). */
    if (fits_open_diskfile(&f, path, READONLY, &status) == 0) {
        status = first_image(f, &naxis, naxes, &npix);
        if (status == BAD_NAXIS) {
            fprintf(stderr, PROG ": error: %s: no HDU holds an image\n", path);
            fits_close_file(f, &(int){0});
            return status;
        }
    }
    if (status == 0 && !(pix = malloc((size_t)npix * sizeof *pix))) {
        fprintf(stderr, PROG ": error: %s: out of memory for %ld pixels\n", path, npix);
        fits_close_file(f, &(int){0});
        return MEMORY_ALLOCATION;
    }
    /* nulval NaN: integer pixels equal to BLANK come back as NaN, like float NaNs. */
    if (status == 0)
        fits_read_pix(f, TFLOAT, first, npix, &nulval, pix, &anynul, &status);
    if (status == 0)
        fits_get_hdu_num(f, &hdu);
    if (status) {
        report_cfitsio(path, status);
        free(pix);
        if (f)
            fits_close_file(f, &(int){0});
        return status;
    }
    fits_close_file(f, &status);

    struct stats s = compute(pix, npix);
    free(pix);
    fprintf(out, "%s,%d,%ld,%ld,%ld,%.10g,%.10g,%.10g,%.10g,%.10g\n", name, hdu - 1, naxes[0],
            naxis > 1 ? naxes[1] : 1, s.n, s.mean, s.stddev, s.min, s.max, s.median);
    return 0;
}

/* Data files only, as the chain's steps see them: no dotfiles, no partial downloads. */
static int wanted(const struct dirent *e)
{
    size_t len = strlen(e->d_name);
    return e->d_name[0] != '.' && !(len > 5 && strcmp(e->d_name + len - 5, ".part") == 0);
}

int main(int argc, char **argv)
{
    const char *night = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            fputs(usage_text, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--night")) {
            if (++i == argc)
                return bad_usage("--night needs a value", "");
            night = argv[i];
        } else if (!strncmp(argv[i], "--night=", 8)) {
            night = argv[i] + 8;
        } else {
            return bad_usage("unexpected argument '%s'", argv[i]);
        }
    }
    if (!night)
        return bad_usage("--night is required", "");
    if (!valid_night(night))
        return bad_usage("night '%s' is not a valid date of the form YYYY-MM-DD", night);

    const char *root = getenv("DOWNLINK_DATA");
    if (!root || !*root)
        root = "/data";
    char reduced[4096], outdir[4096], out[4200], tmp[4200], path[8192];
    snprintf(reduced, sizeof reduced, "%s/reduced/%s", root, night);
    snprintf(outdir, sizeof outdir, "%s/products/%s/" PROG, root, night);
    snprintf(out, sizeof out, "%s/pixstats.csv", outdir);
    snprintf(tmp, sizeof tmp, "%s/.pixstats.csv.XXXXXX", outdir);

    struct dirent **names;
    int count = scandir(reduced, &names, wanted, alphasort);
    if (count < 0) {
        fprintf(stderr, PROG ": error: no reduced folder for night %s: %s: %s\n", night, reduced,
                strerror(errno));
        return 1;
    }

    /* mkdir -p products/<night>/pixstats */
    char partial[4096];
    for (char *p = strchr(strcpy(partial, outdir) + 1, '/');; p = strchr(p + 1, '/')) {
        if (p)
            *p = '\0';
        if (mkdir(partial, 0755) && errno != EEXIST) {
            fprintf(stderr, PROG ": error: cannot create %s: %s\n", partial, strerror(errno));
            return 1;
        }
        if (!p)
            break;
        *p = '/';
    }
    /* Atomic output: a temporary file in the same folder, renamed over the old one at the end. */
    int fd = mkstemp(tmp);
    FILE *csv = fd < 0 ? NULL : fdopen(fd, "w");
    if (!csv) {
        fprintf(stderr, PROG ": error: cannot write in %s: %s\n", outdir, strerror(errno));
        return 1;
    }
    fputs("file,hdu,naxis1,naxis2,n,mean,stddev,min,max,median\n", csv);

    int failed = 0, measured = 0;
    for (int i = 0; i < count; i++) {
        snprintf(path, sizeof path, "%s/%s", reduced, names[i]->d_name);
        struct stat st;
        if (stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
            if (measure(path, names[i]->d_name, csv))
                failed++;
            else
                measured++;
        }
        free(names[i]);
    }
    free(names);

    /* mkstemp makes the file 0600; products are read by other services. */
    if (fchmod(fd, 0644) || fflush(csv) || fsync(fd) || fclose(csv) || rename(tmp, out)) {
        fprintf(stderr, PROG ": error: cannot write %s: %s\n", out, strerror(errno));
        unlink(tmp);
        return 1;
    }
    printf("night %s: %d frames measured, %d failed; wrote %s\n", night, measured, failed, out);
    return failed ? 1 : 0;
}

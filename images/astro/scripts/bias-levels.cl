# bias-levels.cl: IRAF imstatistics of every raw bias frame of a night (an IRAF CL script).
# Run by the `bias-levels` launcher as `irafcl -f bias-levels.cl`, which passes, in the
# environment (IRAF's envget falls back to the host's environment):
#   BL_RAW   the night's raw folder, ending in / (never the current folder: nothing is written there)
#   BL_LIST  a file naming the FITS files to look at, one per line (names in BL_RAW)
#   BL_OUT   the results: "name npix mean stddev min max", one line per bias
#   BL_ERR   the problems: "name: IRAF's message", one line per file IRAF could not read
# A file is a bias when the first word of its IMAGETYP (else OBSTYPE) is "bias" or "zero".
# A file whose header IRAF cannot read has no type and is passed over (fits-verify reports it).
#
# `irafcl -f FILE` runs FILE instead of login.cl, so the script first sets what login.cl
# (/etc/iraf/login.cl, which PyRAF uses) would: the per-user folders under $HOME/.iraf/ that
# downlink-env makes writable. Without uparm, tasks write parameter files into the current
# folder.
set home   = (envget ("HOME") // "/.iraf/")
set imdir  = "home$imdir/"
set cache  = "home$cache/"
set uparm  = "home$uparm/"
set userid = (envget ("USER"))
set imextn = "oif:imh fxf:fits,fit,fts plf:pl qpf:qp stf:hhh,??h"
images
imutil

# The rest is one { } block on purpose: at the top level of a script, this CL skips the
# statement that follows an iferr block; inside a block it does not.
# iferr does not stop at the first error (the rest of its block still runs), so each one
# guards a single task.
{
    string  raw, img, word
    struct  stats
    struct  *files

    raw = envget ("BL_RAW")
    files = envget ("BL_LIST")
    while (fscan (files, img) != EOF) {
        # "[0]": IRAF's FITS kernel then reads the primary HDU and nothing else.
        # One hselect for both keywords: it leaves a missing keyword's field empty, so the first
        # word is IMAGETYP's, else OBSTYPE's (LCO, NOAO). MaxIm DL's "Bias Frame" is a bias too.
        # (A second look at a file IRAF cannot read aborts the script, even in iferr.)
        word = ""
        iferr {
            hselect (raw // img // "[0]", "IMAGETYP,OBSTYPE", yes) | scan (word)
        } then {
            print (img // ": " // $errmsg, >> envget ("BL_ERR"))
            next
        }
        word = strlwr (word)
        if (word != "bias" && word != "zero")
            next

        stats = ""
        iferr {
            imstatistics (raw // img // "[0]", fields="npix,mean,stddev,min,max", lower=INDEF,
                upper=INDEF, nclip=0, format=no) | scan (stats)
        } then {
            print (img // ": " // $errmsg, >> envget ("BL_ERR"))
            next
        }
        print (img // "  " // stats, >> envget ("BL_OUT"))
    }
    files = ""
    # The launcher trusts the results only when this line was reached.
    print ("bias-levels.cl: done")
}
logout

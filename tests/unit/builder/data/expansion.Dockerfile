FROM busybox
ENV V=val E= SP="a b"
ENV A1=$V A2=${V} A3=${V:-d} A4=${E:-d} A7=${V:+alt} A8=${E:+alt}
ENV B1='$V' B2="$V" B3="\$V" B4=\$V B5="a\"b" B6='a\b' B7=a\ b B8="x"'y'z B9=${U:-$V} B10=${U:-${V:+n}}
ENV C1=$SP C2="$SP" C3=pre${V}post C4=$ C5=a$ C8=\\ C9="\\" C10="a\zb"
ENV D1 legacy $V "q" 'z'
LABEL "l 1"="v 1" l2='$V' l3=$V

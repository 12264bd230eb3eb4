FROM busybox
COPY f1 /t/new
COPY f1 /t/dir/
COPY f1 f2 /t/multi/
COPY d /t/d
COPY d /t/d2/
COPY d/* /t/glob/
COPY --chown=ana:users f2 /t/own/
COPY --chown=33 d /t/owned
WORKDIR /t/wd
COPY f1 rel
COPY e/ ./e2

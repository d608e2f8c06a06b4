# -f names a Dockerfile elsewhere; COPY sources stay relative to the context.
FROM busybox
COPY a.txt /a.txt
COPY build/Custom.Dockerfile /df

# Multi-stage build of locus-scheduler onto a distroless, non-root base.
#   docker build -t locus-scheduler:dev .
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/locus-scheduler ./cmd/locus-scheduler

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/locus-scheduler /usr/local/bin/locus-scheduler
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/locus-scheduler"]

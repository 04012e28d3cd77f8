# Build: docker build -t xlrs .   Run: see docker-compose.yml
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin xlrs

FROM debian:bookworm-slim
RUN useradd --system --home /var/lib/xlrs --create-home xlrs
COPY --from=build /src/target/release/xlrs /usr/local/bin/xlrs
USER xlrs
WORKDIR /var/lib/xlrs
ENV XLRS_LISTEN=0.0.0.0:8080
EXPOSE 8080
ENTRYPOINT ["xlrs"]
CMD ["serve"]

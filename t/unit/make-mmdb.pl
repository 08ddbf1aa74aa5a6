#!/usr/bin/perl
# make-mmdb.pl OUT - write the small GeoIP2-Country style .mmdb that
# test_geoip looks addresses up in:
#   192.0.2.0/24     country US (and registered_country US)
#   198.51.100.0/24  registered_country DE only (no country)
#   203.0.113.0/24   a country without iso_code
#   2001:db8::/32    country FR (and registered_country FR)
# IPv4 is also reachable as ::ffff:a.b.c.d (alias_ipv6_to_ipv4).
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my $out = shift or die "usage: $0 OUT\n";

my %types = (
    country            => 'map',
    registered_country => 'map',
    iso_code           => 'utf8_string',
    geoname_id         => 'uint32',
);
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 24,
    database_type            => 'GeoIP2-Country',
    languages                => ['en'],
    description              => { en => 'relayguard unit test data' },
    remove_reserved_networks => 0,
    alias_ipv6_to_ipv4       => 1,
    map_key_type_callback    => sub { $types{ $_[0] } },
);
$tree->insert_network('192.0.2.0/24', {
    country => { iso_code => 'US' }, registered_country => { iso_code => 'US' } });
$tree->insert_network('198.51.100.0/24', { registered_country => { iso_code => 'DE' } });
$tree->insert_network('203.0.113.0/24', { country => { geoname_id => 6255148 } });
$tree->insert_network('2001:db8::/32', {
    country => { iso_code => 'FR' }, registered_country => { iso_code => 'FR' } });

open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";

#!/usr/bin/perl
# mkmmdb.pl OUT NET CC [NET CC ...] - write a GeoIP2-Country style .mmdb
# (country and registered_country iso_code per network) for tests, e.g.
#   perl mkmmdb.pl geo.mmdb 127.0.0.0/8 FR 192.0.2.0/24 US
# Reserved networks (loopback, documentation) are kept on purpose.
use strict;
use warnings;
use MaxMind::DB::Writer::Tree;

my ($out, @pairs) = @ARGV;
die "usage: $0 OUT NET CC [NET CC ...]\n" unless defined $out && @pairs && @pairs % 2 == 0;

my %types = (
    country            => 'map',
    registered_country => 'map',
    iso_code           => 'utf8_string',
);
my $tree = MaxMind::DB::Writer::Tree->new(
    ip_version               => 6,
    record_size              => 24,
    database_type            => 'GeoIP2-Country',
    languages                => ['en'],
    description              => { en => 'relayguard test data' },
    remove_reserved_networks => 0,
    map_key_type_callback    => sub { $types{ $_[0] } },
);
while (my ($net, $cc) = splice(@pairs, 0, 2)) {
    $tree->insert_network($net, {
        country            => { iso_code => $cc },
        registered_country => { iso_code => $cc },
    });
}
open my $fh, '>:raw', $out or die "$out: $!\n";
$tree->write_tree($fh);
close $fh or die "$out: $!\n";
